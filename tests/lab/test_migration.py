"""Live migration in the lab: `xl migrate` to the same host, many times over, and the guest obeys.

A PV guest's live migration needs log-dirty mode, which only shadow paging gives it: the lab's
default hypervisor (built from Debian's xen source with CONFIG_SHADOW_PAGING=y) has it, Debian's
binary hypervisor has not (`XEN_TEST_VM_HYPERVISOR=debian`: these tests skip, saying why).
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_lab.dom0_xs import Dom0Script, decode_read, install_tool
from xen_test_lab.lab import LabHost

from tests.lab.xl_guests import WAIT_MS, domid, ready_pv_guest, wait_gone, wait_keys

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = 20
REMOTE_DIR = "/root/xen-test-vm-migration"


@pytest.fixture(scope="module")
def shadow_host(lab_host: LabHost) -> LabHost:
    """The lab, if its Xen can live-migrate a PV guest (virt_caps has shadow)."""
    caps = lab_host.virt_caps()
    if lab_host.xen.get("hypervisor") == "debian":
        pytest.skip(f"Debian's binary hypervisor has no shadow paging (virt_caps: {caps})")
    assert "shadow" in caps, f"the {lab_host.xen} hypervisor lacks shadow paging: {caps}"
    return lab_host


@pytest.fixture(scope="module")
def guest_kernel(shadow_host: LabHost, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test kernel built from this tree, in dom0; xtv-xs installed too."""
    out = tmp_path_factory.mktemp("migration-kernel")
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "kernel"), f"O={out}", "image"],
        check=True,
        capture_output=True,
    )
    install_tool(shadow_host)
    shadow_host.run(f"mkdir -p {REMOTE_DIR}")
    shadow_host.copy_in(out / "test-vm.xen.gz", f"{REMOTE_DIR}/test-vm.xen.gz")
    return f"{REMOTE_DIR}/test-vm.xen.gz"


@pytest.fixture
def guest(shadow_host: LabHost, guest_kernel: str) -> Iterator[str]:
    """A ready PV test guest (heartbeat off: its console is only what the test causes)."""
    with ready_pv_guest(shadow_host, REMOTE_DIR, "migrate-many", guest_kernel) as name:
        yield name


def test_guest_migrated_20_times_still_obeys_a_shutdown_request(
    shadow_host: LabHost, guest: str
) -> None:
    domids = [domid(shadow_host, guest)]
    seconds = []
    for n in range(1, MIGRATIONS + 1):
        seconds.append(shadow_host.migrate(guest))
        # A new domain each time, resumed (resumes counts them) and ready again.
        now = wait_keys(shadow_host, guest, {"data/test-vm/resumes": str(n)})
        wait_keys(shadow_host, guest, {"data/test-vm/state": "ready"})
        assert now not in domids, f"migration {n} left the guest in domain {now}"
        domids.append(now)
    print(
        f"{MIGRATIONS} migrations: median {statistics.median(seconds):.2f} s, "
        f"max {max(seconds):.2f} s, domids {domids[0]} -> {domids[-1]}"
    )
    listed = shadow_host.run("xl list").stdout
    assert f"{guest}--incoming" not in listed and f"{guest}--migratedaway" not in listed
    assert (
        "resumed domid"
        in shadow_host.run(
            f"cat /var/log/xen/console/guest-{guest}--incoming.log "
            f"/var/log/xen/console/guest-{guest}.log 2>/dev/null || true"
        ).stdout
    )

    # Still obeying: a poweroff request is acknowledged and the domain goes away.
    script = Dom0Script()
    script.send("ack", f"/local/domain/{domids[-1]}/control/shutdown", "poweroff", WAIT_MS)
    script.read("resumes", f"/local/domain/{domids[-1]}/data/test-vm/resumes")
    answers = script.run(shadow_host)
    assert answers["ack"].startswith("ok"), f"poweroff not acknowledged: {answers['ack']}"
    assert decode_read(answers["resumes"]) in (str(MIGRATIONS), None)  # None: already gone
    assert wait_gone(shadow_host, guest), f"{guest} still exists 30 s after acknowledging poweroff"
