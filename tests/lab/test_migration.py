"""Live migration in the lab: `xl migrate` to the same host, many times over, and the guest obeys.

A PV guest's live migration needs log-dirty mode, which only shadow paging gives it: the lab's
default hypervisor (built from Debian's xen source with CONFIG_SHADOW_PAGING=y) has it, Debian's
binary hypervisor has not (`XEN_TEST_VM_HYPERVISOR=debian`: these tests skip, saying why).
"""

from __future__ import annotations

import shlex
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_lab.dom0_xs import Dom0Script, decode_read, install_tool, wait_failure
from xen_test_lab.lab import LabHost

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = 20
REMOTE_DIR = "/root/xen-test-vm-migration"
WAIT_MS = 120_000


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
    name = "migrate-many"
    config = (
        f'name = "{name}"\ntype = "pv"\nkernel = "{guest_kernel}"\nmemory = 16\n'
        'extra = "heartbeat=0"\non_crash = "preserve"\n'
    )
    shadow_host.run(f"cat > {REMOTE_DIR}/{name}.cfg", input=config)
    shadow_host.run(f"xl create -q {REMOTE_DIR}/{name}.cfg")
    try:
        _wait(shadow_host, name, {"data/test-vm/state": "ready"})
        yield name
    finally:
        for domain in (name, f"{name}--incoming", f"{name}--migratedaway"):
            shadow_host.run(f"xl destroy {shlex.quote(domain)}", check=False)


def _domid(host: LabHost, name: str) -> int:
    return int(host.run(f"xl domid {shlex.quote(name)}").stdout.strip())


def _wait(host: LabHost, name: str, values: dict[str, str]) -> int:
    """Wait (on xenstore watches) until the guest's keys hold these values; returns its domid."""
    domid = _domid(host, name)
    script = Dom0Script()
    for key, value in values.items():
        script.wait(key, f"/local/domain/{domid}/{key}", value, WAIT_MS)
    answers = script.run(host)
    failures = {key: wait_failure(answer) for key, answer in answers.items()}
    assert not any(failures.values()), f"domain {domid}: {failures}"
    return domid


def test_guest_migrated_20_times_still_obeys_a_shutdown_request(
    shadow_host: LabHost, guest: str
) -> None:
    domids = [_domid(shadow_host, guest)]
    seconds = []
    for n in range(1, MIGRATIONS + 1):
        seconds.append(shadow_host.migrate(guest))
        # A new domain each time, resumed (resumes counts them) and ready again.
        domid = _wait(shadow_host, guest, {"data/test-vm/resumes": str(n)})
        _wait(shadow_host, guest, {"data/test-vm/state": "ready"})
        assert domid not in domids, f"migration {n} left the guest in domain {domid}"
        domids.append(domid)
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
    gone = shadow_host.run(
        f"for i in $(seq 1 300); do xl domid {shlex.quote(guest)} >/dev/null 2>&1 || exit 0; "
        "sleep 0.1; done; exit 1",
        check=False,
    )
    assert gone.returncode == 0, f"{guest} still exists 30 s after acknowledging poweroff"
