"""Shared fixtures: one real Xen lab per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_lab.hypervisor import DEFAULT_HYPERVISOR
from xen_test_lab.lab import DEFAULT_XENSTORED, LabHost, running_lab
from xen_test_lab.pair import running_pair

# A test session that should record its QEMU pid (the no-orphan test reads it).
PID_FILE_ENV = "XEN_TEST_VM_LAB_PID_FILE"
# Set to "detached" to reuse a lab started with `invoke lab --detach` (quicker while developing).
REUSE_ENV = "XEN_TEST_VM_LAB"
# "debian" (default: the binary's, no shadow paging) or "shadow" (Debian's xen source built
# with shadow paging: PV live migration).
HYPERVISOR_ENV = "XEN_TEST_VM_HYPERVISOR"
# "cxenstored" (default) or "oxenstored" (as XenServer and XCP-ng run it).
XENSTORED_ENV = "XEN_TEST_VM_XENSTORED"


@pytest.fixture(scope="session")
def lab_host() -> Iterator[LabHost]:
    """The session's lab: Xen 4.17 with a Debian dom0 in QEMU, booted once, always stopped.

    Its hypervisor is $XEN_TEST_VM_HYPERVISOR (debian unless set; see `invoke lab --hypervisor`),
    its xenstored $XEN_TEST_VM_XENSTORED (cxenstored unless set).
    """
    if os.environ.get(REUSE_ENV) == "detached":
        from xen_test_lab.cli import attach

        yield attach()
        return
    with running_lab(
        hypervisor=os.environ.get(HYPERVISOR_ENV, DEFAULT_HYPERVISOR),
        xenstored=os.environ.get(XENSTORED_ENV, DEFAULT_XENSTORED),
    ) as host:
        pid_file = os.environ.get(PID_FILE_ENV)
        if pid_file:
            Path(pid_file).write_text(str(host.qemu_pid))
        yield host


def _booted_pair() -> Iterator[tuple[LabHost, LabHost]]:
    with running_pair(
        hypervisor=os.environ.get(HYPERVISOR_ENV, DEFAULT_HYPERVISOR),
        xenstored=os.environ.get(XENSTORED_ENV, DEFAULT_XENSTORED),
    ) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def lab_pair() -> Iterator[tuple[LabHost, LabHost]]:
    """Two lab hosts linked only through QEMU on 127.0.0.1 (xen_test_lab.pair), booted for the
    module that asks and stopped after it (the session's single lab stays idle meanwhile).
    Its tests migrate PV guests, which needs shadow paging: skipped before booting without."""
    if os.environ.get(HYPERVISOR_ENV, DEFAULT_HYPERVISOR) != "shadow":
        pytest.skip(f"the two-host tests live-migrate PV guests: {HYPERVISOR_ENV}=shadow")
    yield from _booted_pair()


@pytest.fixture(scope="module")
def pvh_lab_pair() -> Iterator[tuple[LabHost, LabHost]]:
    """The two-host lab for tests that migrate only PVH guests: those migrate with HAP, so it
    runs on any hypervisor, the default (binary, no shadow paging) included. Booted for the
    module that asks, stopped after it."""
    yield from _booted_pair()
