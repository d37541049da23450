"""Timed behaviour on real Xen (docs/PROTOCOL.md section 7, version 1.2; issue 14).

A late acknowledgement, a delayed action, a hang that stops xenstore and the console for a while
or for good, and the rules that cancel pending steps. Times are measured from pytest around SSH
round trips, so only lower bounds are tight: an acknowledgement seen N ms after the request was
written came at least N ms after it; the upper bounds only catch a kernel that never answers.
Every test runs in both boot modes (guest_mode) and, in CI's second pass, on oxenstored.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest

from tests.kernel.conftest import GuestFactory
from tests.kernel.guests import Guest

pytestmark = pytest.mark.lab

# Slack for "it has not happened yet" checks: an SSH round trip to dom0 under TCG.
EARLY_CHECK_S = 0.5


def give_testing(guest: Guest) -> None:
    """control/testing, empty, owned by dom0 and read/write for the guest (PROTOCOL.md 6)."""
    key = f"{guest.home()}/control/testing"
    guest.host.run(f"xenstore-write {key} '' && xenstore-chmod {key} n0 b{guest.domid()}")


def send(guest: Guest, message: dict[str, object]) -> None:
    """Write a message and wait for the kernel's acknowledgement of it (section 3)."""
    guest.write("control/testing", json.dumps(message, separators=(",", ":")))
    guest.wait_for_key("control/testing", "", timeout=30)


def cpu_seconds(guest: Guest) -> float:
    """The domain's CPU time from `xl list` (Time(s), 0.1 s resolution)."""
    lines = guest.host.run(f"xl list {shlex.quote(guest.name)}").stdout.splitlines()
    return float(lines[-1].split()[5])


def protocol_lines(guest: Guest) -> list[str]:
    """The console without heartbeat ticks, which interleave with everything else."""
    return [line for line in guest.console_lines() if " tick " not in line]


def lines_between(guest: Guest, first: str, last: str) -> list[str]:
    lines = guest.console_lines()
    start = lines.index(first)
    return lines[start + 1 : lines.index(last, start)]


def test_hang_late_ack_string_then_delayed_action(make_guest: GuestFactory) -> None:
    """Every step in order. The event of the late ack string's own write is not a request: taken
    for one, it would cancel the pending poweroff."""
    guest = make_guest("late-ack")
    give_testing(guest)
    send(
        guest,
        {
            "when": "onshutdown",
            "ack": "busy",
            "action": "poweroff",
            "hang_ms": 1000,
            "ack_delay_ms": 2000,
            "action_delay_ms": 3000,
        },
    )
    assert guest.read("data/test-vm/armed") == (
        '{"when":"onshutdown","ack":"busy","action":"poweroff",'
        '"hang_ms":1000,"ack_delay_ms":2000,"action_delay_ms":3000}'
    )

    written = time.monotonic()
    guest.write("control/shutdown", "poweroff")
    guest.wait_console(r"^acknowledging in 2000 ms$")
    assert guest.read("control/shutdown") == "poweroff", "acknowledged before its delay"
    guest.wait_for_key("control/shutdown", "busy", timeout=30)
    acked = time.monotonic()
    assert acked - written >= 3.0
    assert guest.xl_state() and "s" not in guest.xl_state(), "acted before the action delay"
    guest.wait_console(r"^delaying poweroff by 3000 ms$")
    guest.wait_gone(timeout=60)
    assert time.monotonic() - acked >= 3.0 - EARLY_CHECK_S
    lines = protocol_lines(guest)
    assert lines[-5:] == [
        "hanging for 1000 ms",
        "hang over",
        "acknowledging in 2000 ms",
        "delaying poweroff by 3000 ms",
        "powering off",
    ]


def test_request_gone_before_the_late_acknowledgement_is_not_answered(
    make_guest: GuestFactory,
) -> None:
    guest = make_guest("ack-lost")
    give_testing(guest)
    send(guest, {"when": "onshutdown", "ack": "busy", "action": "reboot", "ack_delay_ms": 3000})
    domid = guest.domid()
    guest.write("control/shutdown", "reboot")
    guest.wait_console(r"^acknowledging in 3000 ms$")
    guest.host.run(f"xenstore-rm {guest.home()}/control/shutdown")

    guest.wait_console(r"^request gone before the late acknowledgement: reboot dropped$")
    assert guest.read("control/shutdown") is None, "the late ack string was written anyway"
    assert guest.domid() == domid, "rebooted although the request was gone"
    assert guest.status()["state"] == "ready"
    # Back to normal behaviour: the next request is obeyed.
    guest.write("control/shutdown", "poweroff")
    guest.wait_gone()


def test_a_message_or_a_request_during_the_action_delay_cancels_it(
    make_guest: GuestFactory,
) -> None:
    guest = make_guest("cancel")
    give_testing(guest)
    domid = guest.domid()
    send(guest, {"when": "now", "action": "reboot", "action_delay_ms": 60000})
    guest.wait_console(r"^delaying reboot by 60000 ms$")
    send(guest, {"when": "now", "action": "ignore"})
    guest.wait_console(r"^ignoring$")
    assert protocol_lines(guest)[-3:] == [
        "timed reboot cancelled",
        "testing: now ignore",
        "ignoring",
    ]
    assert guest.domid() == domid

    send(guest, {"when": "now", "action": "crash", "action_delay_ms": 60000})
    guest.wait_console(r"^delaying crash by 60000 ms$")
    guest.write("control/shutdown", "poweroff")
    guest.wait_gone(timeout=30)
    lines = protocol_lines(guest)
    assert lines[-3:] == ["timed crash cancelled", "shutdown request: poweroff", "powering off"]


def test_hang_stops_xenstore_and_console_then_carries_on(make_guest: GuestFactory) -> None:
    guest = make_guest("hang")
    give_testing(guest)
    domid = guest.domid()
    guest.wait_console(rf"^domain {domid} tick 1$", timeout=15)
    cpu_before = cpu_seconds(guest)
    # Timed from before the message: seeing the console line can lag the hang by seconds.
    hung = time.monotonic()
    send(guest, {"when": "now", "action": "ignore", "hang_ms": 8000})
    guest.wait_console(r"^hanging for 8000 ms$")
    message = '{"when":"now","action":"ignore"}'
    guest.write("control/testing", message)
    time.sleep(2.0)
    assert guest.read("control/testing") == message, "answered xenstore while hanging"

    guest.wait_for_key("control/testing", "", timeout=30)
    assert time.monotonic() - hung >= 8.0 - EARLY_CHECK_S
    # Nothing printed while hung, not even the heartbeat; the hung instruction's own action
    # comes first, then the message written meanwhile.
    assert lines_between(guest, "hanging for 8000 ms", "hang over") == []
    after = protocol_lines(guest)
    start = after.index("hang over")
    assert after[start : start + 4] == ["hang over", "ignoring", "testing: now ignore", "ignoring"]
    # It slept: a hang that spun would have used most of the 8 s of CPU.
    assert cpu_seconds(guest) - cpu_before < 1.5
    guest.wait_console(rf"^domain {domid} tick \d+$", count=3, timeout=15)


def test_hang_for_good_on_a_shutdown_request_leaves_only_destroy(make_guest: GuestFactory) -> None:
    guest = make_guest("hang-forever")
    give_testing(guest)
    send(
        guest,
        {"when": "onshutdown", "ack": "ok", "action": "poweroff", "hang_ms": "forever"},
    )
    # Written as a toolstack writes it: `xl shutdown` would itself wait 60 s for the ack and fail.
    guest.write("control/shutdown", "poweroff")
    guest.wait_console(r"^hanging for good$")
    printed = len(guest.console_lines())
    cpu_before = cpu_seconds(guest)
    time.sleep(4.0)
    assert guest.read("control/shutdown") == "poweroff", "acknowledged while hanging for good"
    assert guest.exists() and "s" not in guest.xl_state()
    assert len(guest.console_lines()) == printed, "printed while hanging for good"
    assert cpu_seconds(guest) - cpu_before < 1.5
    guest.host.run(f"xl destroy {shlex.quote(guest.name)}")
    guest.wait_gone(timeout=30)
