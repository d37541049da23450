"""Release tooling for xen-test-vm: publish, download and verify the kernel image."""
