"""xenstore pressure on real Xen (docs/PROTOCOL.md section 8, version 1.2; issue 14).

The guest creates nodes data/test-vm/pressure/n/<i/100>/<i> and watches on data/test-vm/pressure/w/
up to the counts a control/testing message asks for, reports them under data/test-vm/pressure/,
and clears them again. Seen from dom0: the nodes with xenstore-list, the watches through
xenstored's own bookkeeping (`xenstore-control`: C xenstored's per-domain quota counts,
oxenstored's list of watches). Both xenstoreds refuse a domain's node or watch beyond their
default quota, each with its own error. Every test runs in both boot modes (guest_mode) and,
in CI's second pass, on oxenstored.
"""

from __future__ import annotations

import os
import re
import shlex

import pytest
from xen_test_vm.protocol import Instruction

from tests.conftest import XENSTORED_ENV
from tests.kernel.conftest import GuestFactory
from tests.kernel.guests import Guest
from tests.kernel.test_suspend import save_restore
from tests.kernel.test_timed import give_testing

pytestmark = pytest.mark.lab

XENSTORED = os.environ.get(XENSTORED_ENV, "cxenstored")
# What each refuses a guest over its default quota with (1000 nodes, and 128 (C) / 100 (O)
# watches per domain): C xenstored's errno names, oxenstored's own EQUOTA.
NODE_QUOTA_ERROR = {"cxenstored": "ENOSPC", "oxenstored": "EQUOTA"}[XENSTORED]
WATCH_QUOTA_ERROR = {"cxenstored": "E2BIG", "oxenstored": "EQUOTA"}[XENSTORED]
# The kernel's own watches (control/shutdown, control/testing, memory/target (section 9)), which
# count in the quota.
OWN_WATCHES = 3


def pressure(guest: Guest, nodes: int | None = None, watches: int | None = None) -> None:
    """Ask for xenstore pressure in a `now ignore` message built by the client's Instruction,
    and wait until the guest acknowledged it."""
    message = Instruction("now", "ignore", xs_nodes=nodes, xs_watches=watches).to_json()
    guest.write("control/testing", message)
    guest.wait_for_key("control/testing", "", timeout=30)


def pressure_status(guest: Guest) -> dict[str, str]:
    """data/test-vm/pressure/* without the nodes' directory (section 8)."""
    listing = guest.host.run(f"xenstore-ls {guest.home()}/data/test-vm/pressure").stdout
    pairs = (re.match(r'^(\S+) = "(.*)"$', line) for line in listing.splitlines())
    return {m.group(1): m.group(2) for m in pairs if m and m.group(1) != "n"}


def wait_done(guest: Guest, count: int = 1, timeout: float = 120.0) -> dict[str, str]:
    """Wait for the count-th `xenstore pressure done` line; the status it reports, from xenstore."""
    guest.wait_console(r"^xenstore pressure done: ", count=count, timeout=timeout)
    return pressure_status(guest)


def nodes_seen(guest: Guest) -> list[str]:
    """The pressure nodes in the guest's home as dom0 lists them, as `<group>/<index>` (none: the
    directory is gone)."""
    top = f"{guest.home()}/data/test-vm/pressure/n"
    result = guest.host.run(f"xenstore-ls -f {top}", check=False)
    if result.returncode != 0:
        return []
    paths = (
        line.partition(" = ")[0].removeprefix(f"{top}/") for line in result.stdout.splitlines()
    )
    return sorted((p for p in paths if p.count("/") == 1), key=lambda p: int(p.partition("/")[2]))


def node_paths(count: int) -> list[str]:
    """Where the first `count` nodes are: n/<i/100>/<i> (section 8)."""
    return [f"{i // 100}/{i}" for i in range(count)]


def watches_seen(guest: Guest) -> int:
    """How many pressure watches xenstored holds for the guest."""
    domid = guest.domid()
    if XENSTORED == "oxenstored":
        listing = guest.host.run("xenstore-control watches").stdout
        return sum(
            1
            for line in listing.splitlines()
            if line.startswith(f"watch D{domid}: ") and "pressure/w/" in line
        )
    quota = guest.host.run(f"xenstore-control quota {domid}").stdout
    match = re.search(r"^watches\s*:\s*(\d+)$", quota, re.MULTILINE)
    assert match, quota
    return int(match.group(1)) - OWN_WATCHES


def test_nodes_and_watches_are_made_seen_from_dom0_and_cleared(make_guest: GuestFactory) -> None:
    guest = make_guest("pressure")
    give_testing(guest)
    pressure(guest, nodes=200, watches=50)
    guest.wait_console(r"^xenstore pressure: 200 nodes, 50 watches$")
    assert wait_done(guest) == {"state": "done", "nodes": "200", "watches": "50", "error": ""}
    assert nodes_seen(guest) == node_paths(200)
    assert watches_seen(guest) == 50
    assert guest.read("data/test-vm/pressure/n/1/107") == ""

    # Fewer watches, the nodes as they are.
    pressure(guest, watches=20)
    assert wait_done(guest, count=2) == {
        "state": "done",
        "nodes": "200",
        "watches": "20",
        "error": "",
    }
    assert watches_seen(guest) == 20
    assert nodes_seen(guest) == node_paths(200)

    pressure(guest, nodes=0, watches=0)
    assert wait_done(guest, count=3) == {"state": "done", "nodes": "0", "watches": "0", "error": ""}
    assert nodes_seen(guest) == []
    assert watches_seen(guest) == 0
    lines = [line for line in guest.console_lines() if line.startswith("xenstore pressure")]
    assert lines == [
        "xenstore pressure: 200 nodes, 50 watches",
        "xenstore pressure done: 200 nodes, 50 watches",
        "xenstore pressure: 200 nodes, 20 watches",
        "xenstore pressure done: 200 nodes, 20 watches",
        "xenstore pressure: 0 nodes, 0 watches",
        "xenstore pressure done: 0 nodes, 0 watches",
    ]
    # Still the protocol's guest: a request is obeyed.
    guest.write("control/shutdown", "poweroff")
    guest.wait_gone()


def test_a_shutdown_request_is_obeyed_while_the_work_runs(make_guest: GuestFactory) -> None:
    """The work goes through the main loop in small batches: a request written once the first
    nodes are there is obeyed long before 900 nodes and 90 watches are made."""
    guest = make_guest("pressure-busy")
    give_testing(guest)
    home = guest.home()
    message = '{"when":"now","action":"ignore","xs_nodes":900,"xs_watches":90}'
    # One dom0 script: the message, then the request as soon as node 20 exists.
    guest.host.run(
        f"xenstore-write {home}/control/testing {shlex.quote(message)} && "
        f"until xenstore-exists {home}/data/test-vm/pressure/n/0/20; do :; done && "
        f"xenstore-write {home}/control/shutdown poweroff",
        timeout=60,
    )
    guest.wait_gone(timeout=60)
    lines = [line for line in guest.console_lines() if " tick " not in line]
    assert "xenstore pressure: 900 nodes, 90 watches" in lines
    assert lines[-2:] == ["shutdown request: poweroff", "powering off"]
    assert not any(line.startswith("xenstore pressure done") for line in lines), (
        "the work finished before the request was seen"
    )


def test_over_the_quota_the_first_refusal_is_reported(make_guest: GuestFactory) -> None:
    """Both xenstoreds give a domain 1000 nodes by default (the toolstack's own nodes in its
    home and the status keys count too) and 128 (C) or 100 (O) watches (ours count too)."""
    guest = make_guest("pressure-quota")
    give_testing(guest)
    pressure(guest, nodes=1500, watches=300)
    status = wait_done(guest)
    nodes, watches = int(status["nodes"]), int(status["watches"])
    assert 900 < nodes < 1000
    assert status["error"] == f"node {nodes}: {NODE_QUOTA_ERROR}"
    assert nodes_seen(guest) == node_paths(nodes)
    # The watch quota is only reached once the nodes stopped; its error is not the first.
    assert watches == {"cxenstored": 129, "oxenstored": 101}[XENSTORED] - OWN_WATCHES
    guest.wait_console(
        rf"^xenstore pressure done: {nodes} nodes, {watches} watches; "
        rf"first error: node {nodes}: {NODE_QUOTA_ERROR}$"
    )

    # Watches alone: the watch quota's own refusal.
    pressure(guest, watches=300)
    assert wait_done(guest, count=2)["error"] == f"watch {watches}: {WATCH_QUOTA_ERROR}"
    # Fewer: xenstored holds as many as the guest says (oxenstored lists 40 in one reply).
    pressure(guest, watches=40)
    assert wait_done(guest, count=3) == {
        "state": "done",
        "nodes": str(nodes),
        "watches": "40",
        "error": "",
    }
    assert watches_seen(guest) == 40

    # A guest at its quota still answers: an unknown request is acknowledged, then clear.
    guest.write("control/shutdown", "at-quota")
    guest.wait_for_key("control/shutdown", "", timeout=30)
    pressure(guest, nodes=0, watches=0)
    assert wait_done(guest, count=4) == {"state": "done", "nodes": "0", "watches": "0", "error": ""}
    assert nodes_seen(guest) == []
    assert watches_seen(guest) == 0


def test_a_new_domain_makes_them_again(make_guest: GuestFactory) -> None:
    """After save/restore xenstored knows none of the watches and the old home is gone: the
    kernel makes both again, up to the same counts."""
    guest = make_guest("pressure-restore", memory_mib=4)
    give_testing(guest)
    pressure(guest, nodes=30, watches=10)
    wait_done(guest)
    save_restore(guest.host, guest)
    guest.wait_console(r"^resumed domid \d+$")
    assert wait_done(guest, count=2) == {
        "state": "done",
        "nodes": "30",
        "watches": "10",
        "error": "",
    }
    assert nodes_seen(guest) == node_paths(30)
    assert watches_seen(guest) == 10
