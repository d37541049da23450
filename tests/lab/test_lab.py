"""The lab is a real Xen host: xl, xenstore, guests and consoles work over its SSH."""

from __future__ import annotations

import shlex
import time

import pytest
from xen_test_lab.lab import LabHost

pytestmark = pytest.mark.lab


def test_xl_info_reports_xen_4_17_over_ssh(lab_host: LabHost) -> None:
    info = lab_host.run("xl info").stdout
    pairs = (line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    assert fields["xen_major"] == "4"
    assert fields["xen_minor"] == "17"
    assert "pv" in fields["virt_caps"]


def test_dom0_is_domain_zero_in_xenstore(lab_host: LabHost) -> None:
    assert lab_host.run("xenstore-read /local/domain/0/name").stdout.strip() == "Domain-0"


def test_boot_phases_are_recorded_in_boot_order(lab_host: LabHost) -> None:
    """The bench's breakdown of dom0's ready time: every phase's console mark was seen."""
    phases = lab_host.boot_phases
    assert list(phases) == ["xen_banner", "xen", "dom0_kernel", "dom0_init", "ssh"]
    ends = list(phases.values())
    assert ends == sorted(ends) and ends[0] > 0
    assert abs(phases["dom0_init"] - lab_host.init_seconds) < 0.1
    assert phases["ssh"] == round(lab_host.ready_seconds, 2)


def test_dom0_nic_is_virtio_net_and_up(lab_host: LabHost) -> None:
    # virtio-net's link is up at probe (e1000's came ~2.5 s later and delayed the first login).
    driver = lab_host.run("basename $(readlink /sys/class/net/eth0/device/driver)").stdout
    assert driver.strip() == "virtio_net"
    assert lab_host.run("cat /sys/class/net/eth0/carrier").stdout.strip() == "1"


def test_sshd_offers_only_the_cheap_key_exchange(lab_host: LabHost) -> None:
    # sntrup761x25519 cost ~0.6 s of every login under TCG; curve25519 is what dom0 offers.
    config = lab_host.run("/usr/sbin/sshd -T -f /etc/ssh/sshd_config").stdout
    kex = next(line.split()[1] for line in config.splitlines() if line.startswith("kexalgorithms "))
    assert kex.split(",") == ["curve25519-sha256", "curve25519-sha256@libssh.org"]


def _wait_for(predicate_command: str, host: LabHost, timeout: float) -> None:
    """Poll a dom0 condition (guest boot under TCG takes seconds; nothing to watch for here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.run(predicate_command, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for: {predicate_command}")


def test_linux_baseline_guest_boots_logs_and_is_destroyed(lab_host: LabHost) -> None:
    name = "lab-baseline-test"
    config = "/tmp/lab-baseline-test.cfg"
    lab_host.install_baseline()
    lab_host.run(f"cat > {config}", input=lab_host.baseline_guest_config(name))
    lab_host.run(f"xl create {config}")
    try:
        domid = lab_host.run(f"xl domid {name}").stdout.strip()
        assert domid.isdigit() and int(domid) > 0
        assert lab_host.run(f"xenstore-read /local/domain/{domid}/name").stdout.strip() == name
        log = f"/var/log/xen/console/guest-{shlex.quote(name)}.log"
        _wait_for(f"grep -q 'baseline ready' {log}", lab_host, timeout=180)
        assert "baseline ready" in lab_host.console_log(name)
        # Linux announces what control/shutdown requests it handles, as our kernel must too.
        _wait_for(
            f"xenstore-read /local/domain/{domid}/control/feature-poweroff", lab_host, timeout=60
        )
    finally:
        lab_host.run(f"xl destroy {name}", check=False)
    assert lab_host.run(f"xl domid {name}", check=False).returncode != 0
