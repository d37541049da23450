"""A `now` crash or poweroff may take the domain before its ack can be read.

Runs against the FAKE xenstore of xapi_fake (no Xen here): a guest whose toolstack destroys the
domain the moment it crashes, as xl and XAPI do with on_crash=destroy, so the ack is never seen.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from xen_test_vm import protocol
from xen_test_vm.errors import GuestTimeout
from xen_test_vm.guest import Guest

from tests.client.xapi_fake import FakeXenstore

DOMID = 7


class DestroyedOnCrash(FakeXenstore):
    """The guest acks a `now` ending action and its domain is destroyed before anyone reads."""

    def _testing(self, domid: int, message: str) -> None:
        body = json.loads(message)
        if body.get("when") == "now" and body.get("action") in protocol.ENDING_ACTIONS:
            self.drop(domid)
            return
        super()._testing(domid, message)


class NeverAnswers(FakeXenstore):
    def _testing(self, domid: int, message: str) -> None:
        self.drop(domid)  # gone without any ack: a crash the tester did not ask for


def guest_on(xs: FakeXenstore) -> Guest:
    xs.boot(DOMID, "xtv")
    fake: Any = xs
    return Guest(fake, DOMID)


@pytest.mark.parametrize("action", protocol.ENDING_ACTIONS)
def test_a_domain_gone_after_a_now_ending_action_is_its_answer(action: str) -> None:
    message = protocol.Instruction("now", action).to_json()
    assert protocol.ends_domain_at_once(message)
    assert guest_on(DestroyedOnCrash()).send_testing(message, 1.0, gone_answers=True) is False


def test_an_acked_message_leaves_the_domain_there() -> None:
    message = protocol.Instruction("onshutdown", "poweroff", "ok").to_json()
    assert not protocol.ends_domain_at_once(message)
    assert guest_on(DestroyedOnCrash()).send_testing(message, 1.0) is True


def test_a_domain_that_vanishes_otherwise_is_still_an_error() -> None:
    message = protocol.Instruction("onshutdown", "ignore", "none").to_json()
    with pytest.raises(GuestTimeout, match="disappeared while waiting for the testing ack"):
        guest_on(NeverAnswers()).send_testing(message, 1.0)


@pytest.mark.parametrize(
    "message",
    [
        '{"when":"now","action":"suspend"}',
        '{"when":"now","action":"crash","action_delay_ms":500}',
        '{"when":"onshutdown","action":"crash","ack":"ok"}',
        "not json",
        "[1]",
    ],
)
def test_only_an_immediate_ending_action_may_take_the_domain(message: str) -> None:
    assert not protocol.ends_domain_at_once(message)
