"""Invalid control/testing messages on real Xen (PROTOCOL.md section 3, issue 4).

Each message of the corpus is written to control/testing of one running guest (armed with a
valid instruction first); each must be acknowledged, rejected with its exact reason in
data/test-vm/last-error and on the console, and leave the armed instruction in place. Then 300
random invalid messages in a row, and a valid message must still work. The expected reasons
come from the same table as the host unit tests; for the random messages from the host build of
the same C code (kernel/tests/host/driver.c), so the kernel on Xen and on the host must agree.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from xen_test_lab.dom0_xs import Dom0Script, decode_read, domids, install_tool, wait_failure
from xen_test_lab.lab import LabHost

from tests.kernel.host_driver import as_bytes, build_host_tools, run_driver
from tests.kernel.protocol_cases import BOGUS, armed_json
from tests.kernel.testing_lab import (
    console_log,
    console_logs,
    create_guests,
    destroy_guests,
    make_testing_writable,
    send_message,
    xl_states,
)

pytestmark = pytest.mark.lab

ARMED = armed_json("none", "ignore")
AFTER = armed_json("obeyed", "ignore")  # the valid message sent after all the bad ones
REFUSED = armed_json("refused-ack", "ignore")
REFUSED_LINE = "write control/testing refused: EACCES"
NOW_IGNORE = '{"when":"now","action":"ignore"}'
RANDOM_COUNT = 300
# xenstore carries at most 4096 payload bytes for a write: the path, a NUL, then the value.
XENSTORE_PAYLOAD_MAX = 4096


# The longest control/testing value a write can carry for any domid (5 digits at most).
LONGEST_VALUE = XENSTORE_PAYLOAD_MAX - len("/local/domain/65535/control/testing") - 1
# oxenstored's limit as packaged (quota-maxsize): values over it are refused, dom0's included.
OXENSTORED_VALUE_MAX = 2048


def lab_corpus() -> list[tuple[str, bytes, str]]:
    """BOGUS as it can travel through xenstore: messages longer than a write can carry (the
    host tests cover those) are replaced by the longest JSON strings that fit C xenstored's
    payload and oxenstored's quota. Longer than the lab's xenstored takes, a message is
    written anyway and must be refused (E2BIG) without the guest seeing anything."""
    corpus = [(n, as_bytes(m), r) for n, m, r in BOGUS if len(as_bytes(m)) <= LONGEST_VALUE]
    for size in (OXENSTORED_VALUE_MAX, LONGEST_VALUE):
        longest = b'"' + b"a" * (size - 2) + b'"'
        corpus.append((f"{size}-byte string", longest, "not an object at offset 0"))
    return corpus


CORPUS = lab_corpus()


def random_invalid_messages(count: int) -> list[bytes]:
    """Random near-miss messages: valid ones with bytes deleted, inserted or changed."""
    rng = random.Random(4)
    bases = [ARMED, AFTER, '{"when":"now","action":"ignore"}', '{"when":"now","action":"crash"}']
    out: list[bytes] = []
    while len(out) < count * 2:
        data = bytearray(rng.choice(bases).encode())
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(data))
            op = rng.randrange(3)
            if op == 0:
                del data[pos]
            elif op == 1:
                data.insert(pos, rng.randrange(256))
            else:
                data[pos] = rng.randrange(256)
        if data:
            out.append(bytes(data))
    return out


@dataclass
class BadInputRun:
    corpus: list[tuple[str, bytes, str]]  # what reached the guest (fits the lab's xenstored)
    too_big: list[int]  # CORPUS indexes the lab's xenstored must refuse
    randoms: list[bytes]
    random_reasons: list[str]
    answers: dict[object, str]
    console: list[str]
    domain_flags: str


def host_verdicts(messages: list[bytes]) -> list[dict[str, object]]:
    """What the host build of the kernel logic does with each message, from a fresh start."""
    commands: list[str] = []
    for message in messages:
        commands += ["reset", f"testing {message.hex()}"]
    return run_driver(build_host_tools(), commands)[1::2]


@pytest.fixture(scope="module")
def bad_input(lab_host: LabHost, lab_kernel: str, guest_mode: str) -> Iterator[BadInputRun]:
    """One guest; all messages in one batch; then one console fetch and one `xl list`."""
    name = f"xtv-bad-input-{int(time.time()) % 100000}"
    install_tool(lab_host)
    # Random messages the C logic rejects: a valid one (e.g. "now crash") would end the guest.
    candidates = random_invalid_messages(RANDOM_COUNT)
    verdicts = host_verdicts(candidates)
    rejected = [
        (m, str(v["last_error"]))
        for m, v in zip(candidates, verdicts, strict=True)
        if "last_error" in v
    ][:RANDOM_COUNT]
    assert len(rejected) == RANDOM_COUNT
    try:
        create_guests(lab_host, [name], lab_kernel, guest_mode)
        domid = domids(lab_host, [name])[name]
        home = f"/local/domain/{domid}"
        too_big = [i for i, (_, m, _) in enumerate(CORPUS) if len(m) > lab_host.value_max]
        corpus = [c for i, c in enumerate(CORPUS) if i not in too_big]
        script = Dom0Script()
        script.wait("ready", f"{home}/data/test-vm/state", "ready", 60_000)
        make_testing_writable(script, "setup", domid)
        send_message(script, "arm", domid, ARMED)
        for index, (_, message, reason) in enumerate(CORPUS):
            if index in too_big:
                script.write(("bogus", index, "too-big"), f"{home}/control/testing", message)
                continue
            send_message(script, ("bogus", index), domid, message)
            # Status keys are written after the acknowledgement: wait for them, do not read.
            last_error = f"{home}/data/test-vm/last-error"
            script.wait(("bogus", index, "last-error"), last_error, reason, 30_000)
            script.wait(("bogus", index, "armed"), f"{home}/data/test-vm/armed", ARMED, 30_000)
        # The reasons for these are checked on the console, in order (fewer round trips).
        for index, (message, _) in enumerate(rejected):
            send_message(script, ("random", index), domid, message)
        send_message(script, "after", domid, AFTER)
        script.wait("after-armed", f"{home}/data/test-vm/armed", AFTER, 30_000)
        script.write("fire", f"{home}/control/shutdown", "s3")
        script.wait("fired", f"{home}/control/shutdown", "obeyed", 60_000)
        # PROTOCOL.md section 6: a control/testing that dom0 created without giving the guest
        # write access. The kernel still obeys the message, logs the refused acknowledgement,
        # and does not act on it again when the permission change fires the watch.
        testing = f"{home}/control/testing"
        script.add("refused-rm", f"rm {testing}")
        script.write("refused-write", testing, REFUSED)
        script.wait("refused-armed", f"{home}/data/test-vm/armed", REFUSED, 30_000)
        script.lines("refused-line", console_log(name), REFUSED_LINE, 1, 30_000)
        script.read("refused-left", testing)
        script.chmod("refused-chmod", testing, "n0", f"b{domid}")
        send_message(script, "refused-then", domid, NOW_IGNORE)
        answers = script.run(lab_host, timeout=1800)
        flags = xl_states(lab_host, [name]).get(name, ("gone", "?"))[0]
        yield BadInputRun(
            corpus=corpus,
            too_big=too_big,
            randoms=[m for m, _ in rejected],
            random_reasons=[r for _, r in rejected],
            answers=answers,
            console=console_logs(lab_host, [name])[name],
            domain_flags=flags,
        )
    finally:
        destroy_guests(lab_host, [name])


def test_setup(bad_input: BadInputRun) -> None:
    assert bad_input.answers["ready"].startswith("ok")
    assert bad_input.answers[("setup", "testing-chmod")] == "ok"
    assert bad_input.answers[("arm", "testing-acked")].startswith("ok")


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[n for n, _, _ in CORPUS])
def test_invalid_message_is_acknowledged_and_rejected(bad_input: BadInputRun, index: int) -> None:
    name, _, reason = CORPUS[index]
    answers = bad_input.answers
    if index in bad_input.too_big:
        # Over the lab xenstored's limit (oxenstored): refused, so the guest never saw it.
        assert answers[("bogus", index, "too-big")] == "error E2BIG", name
        return
    assert answers[(("bogus", index), "testing-acked")].startswith("ok"), f"{name}: no ack"
    last_error = answers[("bogus", index, "last-error")]
    assert last_error.startswith("ok"), f"last-error: {wait_failure(last_error)}"
    assert f"bogus command: {reason}" in bad_input.console
    # An invalid message leaves the armed instruction in place.
    armed = answers[("bogus", index, "armed")]
    assert armed.startswith("ok"), f"armed: {wait_failure(armed)}"


def test_random_invalid_messages_are_all_rejected_as_on_the_host(bad_input: BadInputRun) -> None:
    answers = bad_input.answers
    not_acked = [
        i
        for i in range(RANDOM_COUNT)
        if not answers[(("random", i), "testing-acked")].startswith("ok")
    ]
    assert not_acked == []
    # The kernel on Xen gives the same reason as the host build, message by message.
    bogus = [line for line in bad_input.console if line.startswith("bogus command: ")]
    want = [f"bogus command: {r}" for _, _, r in bad_input.corpus]
    want += [f"bogus command: {r}" for r in bad_input.random_reasons]
    assert len(bogus) == len(want)
    mismatched = [
        (bad_input.randoms[i - len(bad_input.corpus)], got, expected)
        for i, (got, expected) in enumerate(zip(bogus, want, strict=True))
        if got != expected
    ]
    assert mismatched == []


def test_valid_message_still_works_afterwards(bad_input: BadInputRun) -> None:
    answers = bad_input.answers
    assert answers[("after", "testing-acked")].startswith("ok")
    assert answers["after-armed"].startswith("ok"), wait_failure(answers["after-armed"])
    # The armed instruction fired on the next request and wrote its ack string.
    assert answers["fired"].startswith("ok"), answers["fired"]
    assert f"armed instruction fires: {AFTER}" in bad_input.console
    assert "c" not in bad_input.domain_flags and "s" not in bad_input.domain_flags
    assert json.loads(AFTER)["ack"] == "obeyed"


def test_unwritable_testing_key_is_obeyed_once_and_logged(bad_input: BadInputRun) -> None:
    """PROTOCOL.md section 6: the kernel logs a refused write and carries on."""
    answers = bad_input.answers
    assert answers["refused-write"] == "ok"
    assert answers["refused-armed"].startswith("ok"), wait_failure(answers["refused-armed"])
    assert answers["refused-line"].startswith("ok"), f"no {REFUSED_LINE!r} on the console"
    # Not acknowledged: the message is still there ...
    assert decode_read(answers["refused-left"]) == REFUSED
    # ... and it was acted on once, although the permission change fired the watch again.
    assert answers["refused-chmod"] == "ok"
    assert bad_input.console.count(f"armed: {REFUSED}") == 1
    # Once writable, the next message is acknowledged as usual.
    assert answers[("refused-then", "testing-acked")].startswith("ok")
