"""The kernel on real Xen: boot (PROTOCOL.md 1, 5) and control/shutdown requests (section 2).

Every assertion is about what a toolstack can observe: `xl list`, xenstore, the console log
xenconsoled writes in dom0, and the exit status of `xl` commands.
"""

from __future__ import annotations

import re
import shlex
import time

import pytest
from xen_test_lab.lab import LabHost

from tests.kernel.conftest import KERNEL_DIR, GuestFactory
from tests.kernel.guests import Guest

pytestmark = pytest.mark.lab

VERSION = (KERNEL_DIR / "VERSION").read_text().strip()


def test_banner_names_version_revision_mode_domid_and_memory(
    shared_guest: Guest, guest_mode: str
) -> None:
    banner = shared_guest.wait_console(r"^xen-test-vm ")[0]
    match = re.fullmatch(
        rf"xen-test-vm (\S+) \(revision (\S+)\) mode {guest_mode} domid (\d+) memory (\d+) KiB",
        banner,
    )
    assert match, banner
    assert match.group(1) == VERSION
    assert match.group(2) != ""
    assert int(match.group(3)) == shared_guest.domid()
    assert int(match.group(4)) == 16 * 1024


def test_ready_guest_publishes_status_and_features(shared_guest: Guest) -> None:
    assert shared_guest.status() == {
        "version": VERSION,
        "state": "ready",
        "armed": "",
        "resumes": "0",
        "last-error": "",
    }
    for feature in ("poweroff", "reboot", "suspend"):
        assert shared_guest.read(f"control/feature-{feature}") == "1"
    lines = shared_guest.console_lines()
    assert lines.index("ready") > 0, "ready must follow the banner"


def test_heartbeat_ticks_every_second_by_default(shared_guest: Guest) -> None:
    domid = shared_guest.domid()
    ticks = shared_guest.wait_console(rf"^domain {domid} tick \d+$", count=2, timeout=10)
    numbers = [int(line.rsplit(" ", 1)[1]) for line in ticks]
    assert numbers[:2] == [1, 2]


@pytest.mark.parametrize(
    "value",
    ["s3", "Poweroff", "power off now", "x" * 1000],
    ids=["s3", "wrong-case", "spaces", "1000-bytes"],
)
def test_unknown_request_is_acknowledged_logged_and_ignored(
    shared_guest: Guest, value: str
) -> None:
    shared_guest.write("control/shutdown", value)
    shared_guest.wait_for_key("control/shutdown", "", timeout=10)
    logged = value if len(value) <= 160 else value[:160] + f"...({len(value)} bytes)"
    shared_guest.wait_console(rf"^unknown shutdown request: {re.escape(logged)}$")
    assert shared_guest.xl_state().strip("-") in ("b", "r")
    assert shared_guest.read("data/test-vm/state") == "ready"


def test_heartbeat_zero_turns_the_heartbeat_off(make_guest: GuestFactory) -> None:
    guest = make_guest("quiet", cmdline="heartbeat=0")
    time.sleep(2.5)  # the default period is 1 s: two ticks would be due by now
    assert not [line for line in guest.console_lines() if " tick " in line]


def test_heartbeat_option_sets_the_period(make_guest: GuestFactory) -> None:
    """heartbeat=5, bounded from both sides by host clock readings that can only be late:
    at least the ticks due since we saw `ready`, at most those possible since `xl create`.
    The default 1 s period would print about twice the upper bound."""
    period = 5
    started = time.monotonic()
    guest = make_guest("slow", cmdline=f"console=hvc0 heartbeat={period}")
    ready_seen = time.monotonic()
    time.sleep(2 * period)
    read_start = time.monotonic()
    ticks = [line for line in guest.console_lines() if " tick " in line]
    read_end = time.monotonic()
    assert len(ticks) >= int((read_start - ready_seen) // period), ticks
    assert len(ticks) <= (read_end - started) / period + 1, (ticks, read_end - started)


@pytest.mark.any_xenstored
def test_boots_in_4_mib(make_guest: GuestFactory) -> None:
    guest = make_guest("small", memory_mib=4)
    guest.wait_console(r"memory 4096 KiB$")


# -- requests that end the domain ---------------------------------------------------------


@pytest.mark.parametrize("request_word", ["poweroff", "halt"])
def test_poweroff_and_halt_via_xenstore(make_guest: GuestFactory, request_word: str) -> None:
    guest = make_guest(request_word)
    guest.write("control/shutdown", request_word)
    guest.wait_gone()
    lines = guest.console_lines()
    assert f"shutdown request: {request_word}" in lines
    # The line logged just before SCHEDOP_shutdown made it out: the console was flushed.
    assert lines[-1] == "powering off"


def test_xl_shutdown_wait_succeeds(lab_host: LabHost, make_guest: GuestFactory) -> None:
    guest = make_guest("xlshutdown")
    result = lab_host.run(f"xl shutdown -w {shlex.quote(guest.name)}", check=False, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "acknowledge" not in result.stderr
    assert not guest.exists()
    assert guest.console_lines()[-2:] == ["shutdown request: poweroff", "powering off"]


def _assert_rebooted(guest: Guest, old_domid: int) -> None:
    guest.wait_console(r"^xen-test-vm ", count=2)
    guest.wait_ready()
    new_domid = guest.domid()
    assert new_domid != old_domid
    assert "rebooting" in guest.console_lines()
    assert guest.read("data/test-vm/resumes") == "0"


def test_reboot_via_xenstore_comes_back_ready(make_guest: GuestFactory) -> None:
    guest = make_guest("reboot")
    old_domid = guest.domid()
    guest.write("control/shutdown", "reboot")
    _assert_rebooted(guest, old_domid)


def test_xl_reboot_comes_back_ready(lab_host: LabHost, make_guest: GuestFactory) -> None:
    guest = make_guest("xlreboot")
    old_domid = guest.domid()
    result = lab_host.run(f"xl reboot {shlex.quote(guest.name)}", check=False, timeout=90)
    assert result.returncode == 0, result.stderr
    _assert_rebooted(guest, old_domid)


def test_crash_request_leaves_a_crashed_domain(make_guest: GuestFactory) -> None:
    guest = make_guest("crash")
    guest.write("control/shutdown", "crash")
    guest.wait_xl_state("c")
    assert guest.console_lines()[-2:] == ["shutdown request: crash", "crashing"]


# -- faults and refused writes ------------------------------------------------------------


@pytest.mark.any_xenstored
@pytest.mark.parametrize(
    ("kind", "report"),
    [
        ("null", r"^FATAL: page fault \(vector 14, .*\) at rip 0x[0-9a-f]{16}$"),
        ("ud", r"^FATAL: invalid opcode \(vector 6, .*\) at rip 0x[0-9a-f]{16}$"),
    ],
)
def test_cpu_fault_is_reported_on_the_console_and_crashes(
    make_guest: GuestFactory, kind: str, report: str
) -> None:
    """`fault=` makes the kernel fault on purpose once ready: the trap handler must print the
    fault and registers (flushed) and crash the domain, which on_crash="preserve" keeps."""
    guest = make_guest(f"fault-{kind}", memory_mib=4, cmdline=f"heartbeat=0 fault={kind}")
    guest.wait_xl_state("c")
    lines = guest.console_lines()
    assert any(re.match(report, line) for line in lines), lines
    if kind == "null":
        assert "FATAL: faulting address (cr2) 0x0000000000000000" in lines
    assert lines[-1].endswith("crashing the domain")


def test_refused_feature_write_is_logged_and_ignored(
    lab_host: LabHost, make_guest: GuestFactory
) -> None:
    """PROTOCOL.md 1.3 and 6: a toolstack may make control/feature-* read-only for the guest."""
    guest = make_guest("refused", memory_mib=4, paused=True)
    domid = guest.domid()
    key = f"/local/domain/{domid}/control/feature-reboot"
    lab_host.run(f"xenstore-write {key} '' && xenstore-chmod {key} n0 r{domid}")
    lab_host.run(f"xl unpause {shlex.quote(guest.name)}")
    guest.wait_ready()
    lines = guest.console_lines()
    refusals = [line for line in lines if "refused" in line]
    assert refusals == ["write control/feature-reboot refused: EACCES; ignored"]
    assert guest.read("control/feature-reboot") == ""
    assert guest.read("control/feature-poweroff") == "1"
    assert_obeys = "refused-then-request"
    guest.write("control/shutdown", assert_obeys)
    guest.wait_for_key("control/shutdown", "")
