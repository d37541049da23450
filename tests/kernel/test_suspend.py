"""Suspend and resume on real Xen (PROTOCOL.md section 4): save/restore, checkpoint, migration.

After each resume the kernel must say where it is (`resumed domid N` or
`resumed (cancelled) domid N`), count it in data/test-vm/resumes, be `ready`, and still obey the
next request. Save files go to dom0's /tmp (tmpfs): guests here use 4 MiB, so a save file is
about 4 MiB.
"""

from __future__ import annotations

import shlex

import pytest
from xen_test_lab.lab import LabHost

from tests.kernel.conftest import GuestFactory
from tests.kernel.guests import DOM0_TOOL, Guest

pytestmark = pytest.mark.lab

MEMORY_MIB = 4
CYCLES = 20


def _save_file(guest: Guest) -> str:
    return f"/tmp/{guest.name}.save"


def save_restore(host: LabHost, guest: Guest) -> None:
    """`xl save` then `xl restore`: the guest resumes in a new domain."""
    path = _save_file(guest)
    try:
        host.run(f"xl save {shlex.quote(guest.name)} {path}", timeout=120)
        assert not guest.exists(), "xl save must leave no domain behind"
        host.run(f"xl restore {path}", timeout=120)
    finally:
        host.run(f"rm -f {path}", check=False)


def checkpoint(host: LabHost, guest: Guest) -> None:
    """`xl save -c`: the guest is saved and carries on (the cancelled path)."""
    path = _save_file(guest)
    try:
        host.run(f"xl save -c {shlex.quote(guest.name)} {path}", timeout=120)
    finally:
        host.run(f"rm -f {path}", check=False)


def assert_obeys_a_request(guest: Guest, marker: str) -> None:
    """The kernel still acknowledges and logs control/shutdown requests."""
    guest.write("control/shutdown", marker)
    guest.wait_for_key("control/shutdown", "", timeout=10)
    guest.wait_console(rf"^unknown shutdown request: {marker}$")


def test_save_restore_resumes_in_a_new_domain(lab_host: LabHost, make_guest: GuestFactory) -> None:
    guest = make_guest("save", memory_mib=MEMORY_MIB)
    old_domid = guest.domid()
    save_restore(lab_host, guest)
    guest.wait_ready()
    new_domid = guest.domid()
    assert new_domid != old_domid
    guest.wait_console(rf"^resumed domid {new_domid}$")
    assert "suspending" in guest.console_lines()
    assert guest.status()["resumes"] == "1"
    assert_obeys_a_request(guest, "after-restore")


def test_checkpoint_resumes_cancelled_in_the_same_domain(
    lab_host: LabHost, make_guest: GuestFactory
) -> None:
    guest = make_guest("checkpoint", memory_mib=MEMORY_MIB)
    domid = guest.domid()
    checkpoint(lab_host, guest)
    guest.wait_console(rf"^resumed \(cancelled\) domid {domid}$")
    guest.wait_for_key("data/test-vm/resumes", "1")
    assert guest.domid() == domid
    assert guest.status()["state"] == "ready"
    assert_obeys_a_request(guest, "after-checkpoint")


def log_dirty_capabilities(host: LabHost) -> set[str]:
    """The paging modes in `xl info`'s virt_caps that give a guest log-dirty mode."""
    for line in host.run("xl info").stdout.splitlines():
        if line.startswith("virt_caps"):
            return {"shadow", "hap"} & set(line.split(":", 1)[1].split())
    return set()


def test_migration_to_the_same_host(
    lab_host: LabHost, make_guest: GuestFactory, guest_mode: str
) -> None:
    """`xl migrate` through a local pipe. Live migration needs Xen's log-dirty mode: a PV
    guest gets it only from shadow paging, which Debian's Xen 4.17 is built without
    (CONFIG_SHADOW_PAGING unset, no `shadow` in virt_caps); a PVH guest also from hardware
    assisted paging (`hap`), which the lab has. Without it the migration must fail before the
    guest is suspended, and the guest must carry on unharmed."""
    guest = make_guest("migrate", memory_mib=MEMORY_MIB)
    old_domid = guest.domid()
    capabilities = log_dirty_capabilities(lab_host)
    live_migration = "shadow" in capabilities or (guest_mode == "pvh" and "hap" in capabilities)
    result = lab_host.run(
        f'xl migrate -s "" {shlex.quote(guest.name)} "xl migrate-receive"',
        check=False,
        timeout=180,
    )
    if live_migration:
        assert result.returncode == 0, result.stderr
        guest.wait_ready()
        new_domid = guest.domid()
        assert new_domid != old_domid
        guest.wait_console(rf"^resumed domid {new_domid}$")
        assert guest.status()["resumes"] == "1"
    else:
        assert result.returncode != 0
        assert "logdirty" in result.stderr
        assert guest.domid() == old_domid
        status = guest.status()
        assert (status["state"], status["resumes"]) == ("ready", "0")
        assert "suspending" not in guest.console_lines()
    assert_obeys_a_request(guest, "after-migrate")


def test_twenty_suspend_cycles_in_a_row(lab_host: LabHost, make_guest: GuestFactory) -> None:
    """Alternate restore into a new domain and checkpoint, so both resume paths follow each
    other; the guest never reboots and counts every resume. The loop runs in dom0 (one SSH
    round trip) and prints, per cycle, the domid and data/test-vm/{resumes,state} it saw."""
    guest = make_guest("cycles", memory_mib=MEMORY_MIB)
    name = shlex.quote(guest.name)
    path = _save_file(guest)
    ready_hex = b"ready".hex()
    steps = ["set -e"]
    for cycle in range(1, CYCLES + 1):
        if cycle % 2:
            steps.append(f"xl save {name} {path} >/dev/null 2>&1")
            steps.append(f"xl restore {path} >/dev/null 2>&1")
        else:
            steps.append(f"xl save -c {name} {path} >/dev/null 2>&1")
        steps += [
            f"rm -f {path}",
            f"d=$(xl domid {name})",
            # Both waits are watch-based (xtv-xs), so a cycle costs what xl costs.
            f'printf "wait /local/domain/$d/data/test-vm/resumes {str(cycle).encode().hex()} '
            f'60000\\nwait /local/domain/$d/data/test-vm/state {ready_hex} 60000\\n" '
            f"| {DOM0_TOOL} > /tmp/cycle.out",
            f'grep -c "^ok" /tmp/cycle.out | grep -qx 2 || {{ echo "cycle {cycle}: $(cat '
            f'/tmp/cycle.out)"; exit 1; }}',
            f'echo "cycle {cycle} domid $d"',
        ]
    script = "\n".join(steps)
    result = lab_host.run(script, check=False, timeout=900)
    lab_host.run(f"rm -f {path}", check=False)
    assert result.returncode == 0, result.stdout + result.stderr + guest.console()[-3000:]
    domids = [int(line.split()[-1]) for line in result.stdout.splitlines()]
    assert len(domids) == CYCLES
    # Restores (odd cycles) give a new domid, checkpoints (even cycles) keep it.
    for cycle in range(2, CYCLES + 1):
        changed = domids[cycle - 1] != domids[cycle - 2]
        assert changed == (cycle % 2 == 1), f"cycle {cycle}: domids {domids}"
    lines = guest.console_lines()
    assert sum(line.startswith("resumed domid ") for line in lines) == CYCLES // 2
    assert sum(line.startswith("resumed (cancelled) domid ") for line in lines) == CYCLES // 2
    assert sum(line.startswith("xen-test-vm ") for line in lines) == 1, "it must never reboot"
    assert_obeys_a_request(guest, "after-20-cycles")
