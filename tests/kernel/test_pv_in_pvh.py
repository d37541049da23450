"""The PV kernel inside Xen's PV shim (xl `pvshim = 1`, XAPI's `pv_in_pvh`), on real Xen.

The shim is Debian's own (`xen-utils-4.17`, built from the same source as the hypervisor
package): a Xen that runs as a PVH guest and hosts one PV kernel. Our kernel must not tell the
difference — it says `mode pv` — while Xen sees a PVH domain that suspends and live-migrates
with hardware-assisted paging, which plain PV cannot do on Debian's hypervisor (no shadow
paging). The shim's memory comes on top of the guest's, as XAPI gives it (xl_writer.shim_mib).
The shim forwards xenstore and event channels unchanged, so these tests run on one xenstored.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator

import pytest
from xen_test_lab.lab import LabHost

from tests.kernel.guests import Guest, create_guest
from tests.kernel.test_suspend import assert_obeys_a_request, checkpoint, save_restore

pytestmark = [pytest.mark.lab, pytest.mark.any_xenstored]

MODE = "pv_in_pvh"
MEMORY_MIB = 16


@pytest.fixture
def shim_guest(lab_host: LabHost, lab_kernel: str) -> Iterator[Guest]:
    """A ready guest in the PV shim; destroyed after the test."""
    guest = create_guest(lab_host, "shim", memory_mib=MEMORY_MIB, kernel=lab_kernel, mode=MODE)
    yield guest
    guest.destroy()


def test_boots_as_pv_inside_a_pvh_container(lab_host: LabHost, shim_guest: Guest) -> None:
    banner = shim_guest.wait_console(r"^xen-test-vm ")[0]
    match = re.search(r" mode (\S+) domid (\d+) memory (\d+) KiB$", banner)
    assert match, banner
    assert match.group(1) == "pv"
    # The shim keeps a little of what it is given beyond its share; the guest has ~its own.
    assert MEMORY_MIB * 1024 * 3 // 4 <= int(match.group(3)) <= (MEMORY_MIB + 8) * 1024, banner
    assert shim_guest.status()["state"] == "ready"
    for feature in ("poweroff", "reboot", "suspend"):
        assert shim_guest.read(f"control/feature-{feature}") == "1"
    config = json.loads(lab_host.run(f"xl list -l {shlex.quote(shim_guest.name)}").stdout)
    domain = config[0]["config"]
    assert domain["c_info"]["type"] == "pvh", domain["c_info"]
    assert domain["b_info"]["type.pvh"]["pvshim"] == "True", domain["b_info"]  # a libxl defbool


def kernel_lines(guest: Guest) -> list[str]:
    """The guest kernel's console lines: the shim's own messages (and the blank line it
    prints when the guest stops) share the console."""
    return [line for line in guest.console_lines() if line and not line.startswith("(XEN)")]


def test_xl_shutdown_is_acknowledged_and_obeyed(lab_host: LabHost, shim_guest: Guest) -> None:
    result = lab_host.run(f"xl shutdown -w {shlex.quote(shim_guest.name)}", check=False)
    assert result.returncode == 0, result.stderr
    assert not shim_guest.exists()
    assert kernel_lines(shim_guest)[-2:] == ["shutdown request: poweroff", "powering off"]


def test_reboot_request_comes_back_ready(shim_guest: Guest) -> None:
    old_domid = shim_guest.domid()
    shim_guest.write("control/shutdown", "reboot")
    shim_guest.wait_console(r"^xen-test-vm ", count=2)
    shim_guest.wait_ready()
    assert shim_guest.domid() != old_domid
    assert "rebooting" in kernel_lines(shim_guest)
    assert shim_guest.read("data/test-vm/resumes") == "0"


def test_save_restore_checkpoint_and_live_migration(lab_host: LabHost, shim_guest: Guest) -> None:
    """Every suspend path of PROTOCOL.md section 4 through the shim; the live migration uses
    the PVH container's log-dirty mode (hap), which plain PV lacks on Debian's hypervisor."""
    first = shim_guest.domid()
    checkpoint(lab_host, shim_guest)
    shim_guest.wait_for_key("data/test-vm/resumes", "1")
    assert shim_guest.domid() == first
    save_restore(lab_host, shim_guest)
    shim_guest.wait_for_key("data/test-vm/resumes", "2")
    restored = shim_guest.domid()
    assert restored != first
    lab_host.run(
        f'xl migrate -s "" {shlex.quote(shim_guest.name)} "xl migrate-receive"', timeout=180
    )
    shim_guest.wait_for_key("data/test-vm/resumes", "3")
    assert shim_guest.domid() not in (first, restored)
    assert shim_guest.status()["state"] == "ready"
    assert_obeys_a_request(shim_guest, "after-shim-migrate")
