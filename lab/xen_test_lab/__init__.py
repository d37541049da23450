"""The local Xen lab: Debian's Xen 4.17 and a Debian dom0, booted in QEMU, reachable over SSH."""
