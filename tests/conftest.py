"""Shared fixtures: one real Xen lab per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_lab.hypervisor import DEFAULT_HYPERVISOR
from xen_test_lab.lab import LabHost, running_lab

# A test session that should record its QEMU pid (the no-orphan test reads it).
PID_FILE_ENV = "XEN_TEST_VM_LAB_PID_FILE"
# Set to "detached" to reuse a lab started with `invoke lab --detach` (quicker while developing).
REUSE_ENV = "XEN_TEST_VM_LAB"
# "shadow" (default: Debian's xen source built with shadow paging) or "debian" (the binary's).
HYPERVISOR_ENV = "XEN_TEST_VM_HYPERVISOR"


@pytest.fixture(scope="session")
def lab_host() -> Iterator[LabHost]:
    """The session's lab: Xen 4.17 with a Debian dom0 in QEMU, booted once, always stopped.

    Its hypervisor is $XEN_TEST_VM_HYPERVISOR (shadow unless set; see `invoke lab --hypervisor`).
    """
    if os.environ.get(REUSE_ENV) == "detached":
        from xen_test_lab.cli import attach

        yield attach()
        return
    with running_lab(hypervisor=os.environ.get(HYPERVISOR_ENV, DEFAULT_HYPERVISOR)) as host:
        pid_file = os.environ.get(PID_FILE_ENV)
        if pid_file:
            Path(pid_file).write_text(str(host.qemu_pid))
        yield host
