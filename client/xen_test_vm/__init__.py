"""Drive the xen-test-vm guest kernel on XenServer/XCP-ng (XAPI) and plain Xen (xl) hosts."""

__version__ = "0.1.0"
