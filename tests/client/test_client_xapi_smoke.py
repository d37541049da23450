"""Smoke rows on XAPI, run against the FAKE XAPI with FAKE guests (tests/client/xapi_fake.py).

The fake follows what xen-api's sources say XAPI does where the row depends on it (each rule is
named where the fake implements it); it is not XAPI. The rows themselves are the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import pytest
import XenAPI
from xen_test_vm import scenarios
from xen_test_vm.errors import ToolstackError
from xen_test_vm.reaper import Reaper
from xen_test_vm.session import Session
from xen_test_vm.smoke import PASS, Context, Scenario, _cleanup, _run_one
from xen_test_vm.xapi import XapiToolstack

from tests.client.client_fakes import RecordingHost
from tests.client.xapi_fake import (
    OTHER_HOST,
    FakeReaper,
    FakeSession,
    FakeXapi,
    FakeXapiServer,
    FakeXenstore,
)

KERNEL = "/var/lib/xcp/guest/test-vm.smoke-fake0001.xen.gz"


@dataclass
class Rig:
    model: FakeXapi
    xs: FakeXenstore
    ts: XapiToolstack
    ctx: Context


@pytest.fixture
def rig() -> Iterator[Rig]:
    xs = FakeXenstore()
    model = FakeXapi(xs=xs)
    with FakeXapiServer(model) as server:
        host = RecordingHost()
        ts = XapiToolstack(host, session_factory=lambda: XenAPI.Session(server.url))
        session = FakeSession(host, ts, xs)
        ctx = Context(
            cast(Session, session), cast(Reaper, FakeReaper()), KERNEL, "fake0001", mode="pvh"
        )
        yield Rig(model, xs, ts, ctx)


def row(name: str) -> Scenario:
    return next(s for s in scenarios.ALL if s.name == name)


def test_armed_reboot_on_poweroff_expects_success_and_halted_on_xapi(rig: Rig) -> None:
    """xenopsd never restarts it: after the ack it waits for any shutdown and ends Halted
    (ocaml/xenopsd/lib/xenops_server.ml VM_shutdown); VM_REBOOTED is never raised."""
    result = _run_one(rig.ctx, row("armed-reboot-on-poweroff"))
    assert (result.outcome, result.detail) == (PASS, "power state halted")
    assert rig.model.vms == {} and rig.ctx.created == {}
    assert ("VM.clean_shutdown",) in {(m,) for m, _ in rig.model.api_calls()}


def test_cleanup_after_a_failed_row_destroys_and_does_not_report_the_vm_left(rig: Rig) -> None:
    """A failed row leaves its VM to the cleanup: gone afterwards is not "left", and the
    destroyed VM's domid is not read (XAPI answers HANDLE_INVALID for a destroyed ref)."""
    tv = rig.ctx.boot("failed-row")
    assert rig.model.vms[tv.vm.ref]["power_state"] == "Running"
    rig.model.calls.clear()
    assert _cleanup(rig.ctx) == []
    assert rig.model.vms == {}
    calls = rig.model.api_calls()
    destroyed = calls.index(("VM.destroy", (tv.vm.ref,)))
    assert [m for m, a in calls[destroyed + 1 :] if tv.vm.ref in a] == []


def test_a_domain_on_another_pool_member_is_not_looked_up_in_this_hosts_xenstore(
    rig: Rig,
) -> None:
    """VM.resident_on first: the same domid in this host's xenstore is another guest."""
    tv = rig.ctx.boot("resident")
    rig.model.vms[tv.vm.ref]["resident_on"] = OTHER_HOST
    with pytest.raises(ToolstackError) as info:
        rig.ctx.refresh(tv)
    assert info.value.code == "VM_NOT_ON_THIS_HOST"
    assert "runs on pool member member2, not on master1" in str(info.value)


@pytest.mark.parametrize("name", ["clean-reboot", "request-reboot"])
def test_reboot_rows_wait_on_event_from_for_the_new_domid(rig: Rig, name: str) -> None:
    """xapi sets VM.domid after xenopsd introduced the new domain: the rows follow the VM
    record (event.from on vm/<ref>), not xenstore's @introduceDomain."""
    result = _run_one(rig.ctx, row(name))
    assert result.outcome == PASS, result.detail
    assert not any("@introduceDomain" in paths for paths in rig.xs.watched)
    froms = [a for m, a in rig.model.api_calls() if m == "event.from"]
    assert froms and all(a[0][0].startswith("vm/OpaqueRef:vm-") for a in froms)
