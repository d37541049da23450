"""Fixtures for kernel tests. Build once, boot guests on the session's lab, always clean up.

- `kernel_image` (session): `make -C kernel O=<tmp> image`, the path of test-vm.xen.gz.
- `lab_kernel` (session): that image copied into the lab's dom0 (needs `lab_host`), plus the
  xtv-xs tool (kernel/tests/dom0) the waits use.
- `guest_mode` (session): "pv", then "pvh": every test that boots a guest (through the fixtures
  below, or by passing it to create_guests) runs once per boot mode of the one image.
- `make_guest` (function): a factory; `make_guest("prefix", memory_mib=16, cmdline="")` runs
  `xl create` and waits until data/test-vm/state is `ready` (`wait_ready=False`: do not wait;
  `paused=True`: `xl create -p`, the test unpauses). Every guest it made is destroyed
  when the test ends, whatever the test did to it.
- `shared_guest` (module): one ready guest for tests that leave it running and ready (e.g. send
  an unknown request, arm and disarm); a test that shuts it down must use `make_guest` instead.

A `Guest` (tests/kernel/guests.py) reads/writes xenstore relative to its home, waits for keys
and console lines, and reports its `xl list` state; it follows the guest by name, so it keeps
working after reboot, restore and migration give the domain a new domid.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from xen_test_lab.dom0_xs import install_tool
from xen_test_lab.lab import LabHost

from tests.kernel.guests import (
    DEFAULT_MEMORY_MIB,
    GUEST_MODES,
    Guest,
    create_guest,
    install_kernel,
)

KERNEL_DIR = Path(__file__).resolve().parents[2] / "kernel"


class GuestFactory(Protocol):
    """The `make_guest` fixture's signature."""

    def __call__(
        self,
        prefix: str = "guest",
        memory_mib: int = DEFAULT_MEMORY_MIB,
        cmdline: str = "",
        wait_ready: bool = True,
        paused: bool = False,
    ) -> Guest: ...


def build_kernel(out_dir: Path, **env: str) -> Path:
    """Build the kernel into out_dir; returns the gzipped image."""
    result = subprocess.run(
        ["make", "-s", "-C", str(KERNEL_DIR), f"O={out_dir}", "image"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(f"kernel build failed:\n{result.stdout}\n{result.stderr}")
    return out_dir / "test-vm.xen.gz"


@pytest.fixture(scope="session")
def kernel_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kernel, built once per session from the working tree."""
    return build_kernel(tmp_path_factory.mktemp("kernel-build"))


@pytest.fixture(scope="session")
def lab_kernel(lab_host: LabHost, kernel_image: Path) -> str:
    """The kernel's path inside the lab's dom0 (xtv-xs, which guests.py waits with, too)."""
    install_tool(lab_host)
    return install_kernel(lab_host, kernel_image)


@pytest.fixture(scope="session", params=GUEST_MODES)
def guest_mode(request: pytest.FixtureRequest) -> str:
    """The boot mode (xl type) of the guests a test makes; session-scoped so pytest runs all
    tests of one mode together and module fixtures boot their guests once per mode."""
    mode: str = request.param
    return mode


@pytest.fixture
def make_guest(lab_host: LabHost, lab_kernel: str, guest_mode: str) -> Iterator[GuestFactory]:
    """Create ready test guests; all of them are destroyed at the end of the test."""
    made: list[Guest] = []

    def factory(
        prefix: str = "guest",
        memory_mib: int = DEFAULT_MEMORY_MIB,
        cmdline: str = "",
        wait_ready: bool = True,
        paused: bool = False,
    ) -> Guest:
        guest = create_guest(
            lab_host,
            prefix,
            memory_mib=memory_mib,
            cmdline=cmdline,
            wait_ready=wait_ready,
            paused=paused,
            kernel=lab_kernel,
            mode=guest_mode,
        )
        made.append(guest)
        return guest

    yield factory
    for guest in made:
        guest.destroy()


@pytest.fixture(scope="module")
def shared_guest(lab_host: LabHost, lab_kernel: str, guest_mode: str) -> Iterator[Guest]:
    """One ready guest shared by a module's tests; destroyed after the module."""
    guest = create_guest(lab_host, "shared", kernel=lab_kernel, mode=guest_mode)
    yield guest
    guest.destroy()
