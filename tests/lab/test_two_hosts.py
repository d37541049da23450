"""The two-host lab: dom0s linked only through QEMU on 127.0.0.1, and live migration between them.

Both hosts boot from the same image (xen_test_lab.pair). The guest is created on the first
host, migrated with `xl migrate NAME xen-lab-2` (xl's own transport: ssh from dom0 to dom0 over
the link), and must obey on the second; then the client's `migrate --destination` takes it back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_lab.dom0_xs import Dom0Script, install_tool
from xen_test_lab.lab import LabHost
from xen_test_lab.pair import HOST_NAMES, peer_address

from tests.lab.xl_guests import WAIT_MS, destroy_everywhere, ready_pv_guest, wait_gone, wait_keys

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
REMOTE_DIR = "/root/xen-test-vm-pair"


@pytest.fixture(scope="module")
def pair_kernel(lab_pair: tuple[LabHost, LabHost], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The kernel built from this tree in both dom0s (same path), xtv-xs too."""
    out = tmp_path_factory.mktemp("pair-kernel")
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "kernel"), f"O={out}", "image"],
        check=True,
        capture_output=True,
    )
    for host in lab_pair:
        caps = host.virt_caps()
        if "shadow" not in caps:
            pytest.skip(f"no shadow paging, so no PV live migration (virt_caps: {caps})")
        install_tool(host)
        host.run(f"mkdir -p {REMOTE_DIR}")
        host.copy_in(out / "test-vm.xen.gz", f"{REMOTE_DIR}/test-vm.xen.gz")
    return f"{REMOTE_DIR}/test-vm.xen.gz"


@pytest.fixture
def pair_guest(lab_pair: tuple[LabHost, LabHost], pair_kernel: str) -> Iterator[str]:
    """A ready PV guest on the first host; destroyed on both hosts afterwards."""
    with ready_pv_guest(lab_pair[0], REMOTE_DIR, "pair-guest", pair_kernel, lab_pair) as name:
        yield name


def test_dom0s_reach_each_other_only_over_the_peer_link(
    lab_pair: tuple[LabHost, LabHost],
) -> None:
    for index, host in enumerate(lab_pair):
        other = 1 - index
        addresses = host.run("ip -4 -o addr show").stdout
        assert f"{peer_address(index)}/24" in addresses
        # Routed to the peer over eth1, the link, not QEMU's user network (eth0).
        route = host.run(f"ip route get {peer_address(other)}").stdout
        assert "dev eth1" in route, route
        assert host.run(f"ssh {HOST_NAMES[other]} hostname").stdout.strip() == HOST_NAMES[other]


def test_xl_migrate_to_the_other_host_and_the_guest_obeys_there(
    lab_pair: tuple[LabHost, LabHost], pair_guest: str
) -> None:
    first, second = lab_pair
    first.run(f"xl migrate {pair_guest} {HOST_NAMES[1]}", timeout=300)
    assert first.run(f"xl domid {pair_guest}", check=False).returncode != 0, "still on host 1"
    domid = wait_keys(
        second, pair_guest, {"data/test-vm/resumes": "1", "data/test-vm/state": "ready"}
    )
    script = Dom0Script()
    script.send("ack", f"/local/domain/{domid}/control/shutdown", "poweroff", WAIT_MS)
    answers = script.run(second)
    assert answers["ack"].startswith("ok"), f"poweroff not acknowledged on host 2: {answers}"
    assert wait_gone(second, pair_guest), f"{pair_guest} still on host 2 after its poweroff ack"


def test_client_migrate_destination_moves_the_guest_and_it_obeys(
    lab_pair: tuple[LabHost, LabHost], local_kernel: Path, pair_kernel: str
) -> None:
    """A VM the client installed on host 1: `migrate --destination xen-lab-2` moves it (config
    and kernel along), and the client on host 2 finds it there and its request is obeyed."""
    first, second = lab_pair
    name = "pair-client"
    cli = [sys.executable, "-m", "xen_test_vm", "--ssh-config", str(first.ssh_config)]

    def client(host: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, "--host", host, *args], capture_output=True, text=True, timeout=600, check=False
        )

    try:
        installed = client(
            HOST_NAMES[0], "install", "--kernel", str(local_kernel), "--name", name, "--start"
        )
        assert installed.returncode == 0, installed.stderr
        moved = client(HOST_NAMES[0], "migrate", name, "--destination", HOST_NAMES[1])
        assert moved.returncode == 0, moved.stdout + moved.stderr
        domid = wait_keys(second, name, {"data/test-vm/resumes": "1"})
        asked = client(HOST_NAMES[1], "request", name, "poweroff", "--timeout", "60")
        assert asked.returncode == 0, asked.stdout + asked.stderr
        # install's VM has on_poweroff = "destroy": obeying the poweroff means it is gone.
        assert wait_gone(second, name), f"{name} still on {HOST_NAMES[1]} after its poweroff"
        # The VM lives on host 2 now: host 1 no longer knows it.
        status = client(HOST_NAMES[0], "status", name)
        assert status.returncode != 0 and "no VM named" in status.stderr, status.stderr
        print(f"client migrate: domid {domid} on {HOST_NAMES[1]}")
    finally:
        destroy_everywhere(lab_pair, name)
        for host in lab_pair:
            client(host.ssh_alias, "destroy", name)


@pytest.fixture(scope="module")
def local_kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pair-local-kernel")
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "kernel"), f"O={out}", "image"],
        check=True,
        capture_output=True,
    )
    return out / "test-vm.xen.gz"


def test_smoke_row_migrates_to_the_destination_and_the_guest_obeys_there(
    lab_pair: tuple[LabHost, LabHost], pair_kernel: str, local_kernel: Path
) -> None:
    """The smoke matrix's migrate-to-destination row, run for real between the two hosts."""
    first = lab_pair[0]
    kernel = local_kernel
    result = subprocess.run(
        [
            sys.executable, "-m", "xen_test_vm", "--ssh-config", str(first.ssh_config),
            "--host", HOST_NAMES[0], "smoke", "--kernel", str(kernel), "--mode", "pv",
            "--only", "migrate-to-destination", "--destination", HOST_NAMES[1], "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    row = json.loads(result.stdout)["scenarios"][0]
    assert (row["name"], row["outcome"]) == ("migrate-to-destination", "pass"), row
    assert "obeyed a clean shutdown there" in row["detail"]
    # Nothing left on either host: no domain, no config, no copied kernel.
    for host in lab_pair:
        listed = host.run("xl list").stdout
        assert "xtvm-" not in listed, listed
        assert "smoke" not in host.run("ls /var/lib/xen-test-vm 2>/dev/null || true").stdout
