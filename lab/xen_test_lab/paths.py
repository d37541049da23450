"""Where the lab keeps what it downloads and builds: a cache outside the repository."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The lab cache: $XEN_TEST_VM_CACHE, else $XDG_CACHE_HOME/xen-test-vm, else ~/.cache/..."""
    explicit = os.environ.get("XEN_TEST_VM_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "xen-test-vm"


def state_dir() -> Path:
    """Where a detached lab records its QEMU pid, port and keys."""
    return cache_dir() / "lab-state"
