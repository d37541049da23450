"""An XAPI EMULATOR for the xen-test-vm lab: not XAPI, not XenServer, not XCP-ng.

No real XenServer or XCP-ng host was available to this project, and XAPI cannot be built here.
This program serves the XenAPI subset the xen-test-vm client uses (XML-RPC on
/var/lib/xcp/xapi and on TCP with a password), and drives real domains on the lab's real Xen
through xl and the real xenstored. Where the guest can tell the difference it follows xenopsd's
sources (xapi-project/xen-api); each such behaviour names the source file it follows.
It runs in dom0 on Debian's python3.11 with the standard library only.
"""
