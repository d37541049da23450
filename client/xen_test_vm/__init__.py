"""Drive the xen-test-vm guest kernel on XenServer/XCP-ng (XAPI) and plain Xen (xl) hosts."""

from importlib.resources import files

# The one version source is kernel/VERSION (client/xen_test_vm/VERSION links to it): a release
# bumps it, the kernel reports it, and the client downloads the released kernel of its version.
__version__ = files(__name__).joinpath("VERSION").read_text(encoding="utf-8").strip()
