"""Host unit tests of the kernel's pure logic (kernel/logic/), built with ASan and UBSan.

The C code is driven, not mocked: kernel/tests/host/driver.c feeds each step to the real
state machine and JSON reader and prints what they decided. The tables below are the expected
outcomes, written to be checked line by line against PROTOCOL.md sections 2, 3 and 5.
Real-Xen behaviour is tested separately in test_testing_matrix.py and test_bad_input.py.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.host_driver import as_bytes, build_host_tools, run_driver
from tests.kernel.protocol_cases import ACTION_LINE, ACTIONS, BOGUS, PERFORMED, armed_json


@pytest.fixture(scope="module")
def host_build() -> Path:
    """Build the unit-test binary and the driver (make is incremental)."""
    return build_host_tools()


# --- C unit tests (codec, string helpers, JSON bounds) ----------------------------------------

C_CASES = (
    "xs_header_layout_matches_xen",
    "xs_encode_read_has_nul_terminated_path",
    "xs_encode_write_value_has_no_nul",
    "xs_encode_write_empty_value",
    "xs_encode_watch_and_unwatch_two_strings",
    "xs_encode_rm",
    "xs_encode_refuses_payload_over_limit",
    "xs_encode_refuses_small_buffer_and_leaves_it",
    "xs_message_size_needs_header_and_rejects_oversize",
    "xs_decode_roundtrip_and_length_mismatch",
    "xs_error_names_map_both_ways",
    "xs_reply_error_from_payload",
    "xs_watch_event_split",
    "xs_watch_event_malformed",
    "xs_type_names",
    "kbuf_truncates_and_stays_terminated",
    "kbuf_numbers",
    "kbuf_printable_escapes_and_cuts",
    "kbuf_json_string_escapes_minimum",
    "kstring_compare",
    "json_depth_limit_exact",
    "json_max_input_all_of_it_usable",
    "json_members_limit",
    "json_input_not_nul_terminated",
    "proto_struct_fits_budget",
    "balloon_obeys_target_in_pages",
    "balloon_goal_bounded_by_room",
    "balloon_partial_percent_from_boot_size",
    "balloon_hvm_offset_from_static_max",
    "balloon_huge_values",
    "kparse_ulong_digits_only",
    "p2m_tree_6_gib",
    "p2m_tree_64_gib",
    "p2m_tree_edges",
)


@pytest.fixture(scope="module")
def c_results(host_build: Path) -> dict[str, str]:
    return case_results(host_build / "unit-tests", C_CASES)


def case_results(binary: Path, cases: tuple[str, ...]) -> dict[str, str]:
    """Run a C test binary; its "ok NAME" / "FAIL NAME: why" line per case, by name."""
    result = subprocess.run([str(binary)], capture_output=True, text=True, check=False, timeout=60)
    outcome: dict[str, str] = {}
    for line in result.stdout.splitlines():
        verdict, _, rest = line.partition(" ")
        if verdict in ("ok", "FAIL"):
            name = rest.split(":")[0]
            outcome[name] = line
    failed = sum(1 for line in outcome.values() if line.startswith("FAIL"))
    assert result.returncode == (1 if failed else 0), result.stderr
    assert set(outcome) == set(cases), f"the C test list and the table for {binary.name} differ"
    return outcome


@pytest.mark.parametrize("case", C_CASES)
def test_c_unit(c_results: dict[str, str], case: str) -> None:
    assert c_results[case] == f"ok {case}"


# --- The xenstore ring client against a fake xenstored (kernel/tests/host/ring_tests.c) --------

RING_CASES = (
    "ring_indices_wrap_around",
    "messages_split_over_the_ring_end",
    "replies_and_events_interleaved",
    "reply_and_event_in_one_notification",
    "main_loop_never_sleeps_with_an_event_behind_a_reply",
    "read_covers_events_queued_before_its_reply",
    "events_coalesce_per_watch_and_bad_tokens_are_said",
    "pipelined_requests_are_answered_in_order",
    "error_replies_are_returned",
    "a_send_that_times_out_halfway_is_finished_first",
    "a_half_sent_request_goes_out_from_the_main_loop",
    "a_broken_connection_is_said_once",
    "corrupt_indices_are_never_used",
    "an_impossible_length_breaks_the_stream_once",
    "reset_skips_stale_replies_and_forgets_events",
)


@pytest.fixture(scope="module")
def ring_results(host_build: Path) -> dict[str, str]:
    return case_results(host_build / "ring-tests", RING_CASES)


@pytest.mark.parametrize("case", RING_CASES)
def test_ring_client(ring_results: dict[str, str], case: str) -> None:
    assert ring_results[case] == f"ok {case}"


# --- JSON reader -------------------------------------------------------------------------------

OK = "ok"
# (input, expected): expected is a list of (key, type, string value or None) for accepted input,
# or (reason, offset, offending byte or None) for rejected input.
JSON_CASES: list[tuple[bytes, Any]] = [
    (b"{}", []),
    (b" \t\r\n{ } \n", []),
    (b'{"a":"b"}', [("a", "string", "b")]),
    (b'{"a" : "b" , "c":1}', [("a", "string", "b"), ("c", "number", None)]),
    (
        b'{"n":null,"t":true,"f":false}',
        [("n", "null", None), ("t", "boolean", None), ("f", "boolean", None)],
    ),
    (
        b'{"x":[1,-0,2.5e10,1E-3,0.1,{"y":[]}],"o":{}}',
        [("x", "array", None), ("o", "object", None)],
    ),
    (b'{"e":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u007f"}', [("e", "string", '"\\/\b\f\n\r\tA\x7f')]),
    (b'{"k\\u0061y":"v"}', [("kay", "string", "v")]),
    (b'{"a":1,"a":2}', [("a", "number", None), ("a", "number", None)]),
    (b"", ("unexpected end of input", 0, None)),
    (b"   ", ("unexpected end of input", 3, None)),
    (b"[]", ("not an object", 0, None)),
    (b'"when"', ("not an object", 0, None)),
    (b"42", ("not an object", 0, None)),
    (b"poweroff", ("not an object", 0, None)),
    (b"{", ("unexpected end of input", 1, None)),
    (b'{"a"', ("unexpected end of input", 4, None)),
    (b'{"a":', ("unexpected end of input", 5, None)),
    (b'{"a":1', ("unexpected end of input", 6, None)),
    (b'{"a":1,}', ("expected a string key", 7, None)),
    (b"{a:1}", ("expected a string key", 1, None)),
    (b"{'a':1}", ("expected a string key", 1, None)),
    (b'{"a" 1}', ("expected ':'", 5, None)),
    (b'{"a":1 "b":2}', ("expected ',' or '}'", 7, None)),
    (b'{"a":[1 2]}', ("expected ',' or ']'", 8, None)),
    (b'{"a":[1,]}', ("expected a value", 8, None)),
    (b'{"a":}', ("expected a value", 5, None)),
    (b'{"a":{"b"}}', ("expected ':'", 9, None)),
    (b'{"a":{1:2}}', ("expected a string key", 6, None)),
    (b'{"a":"b}', ("unterminated string", 8, None)),
    (b'{"a":"b\\', ("unterminated string", 8, None)),
    (b'{"a":"\\x"}', ("invalid escape", 6, None)),
    (b'{"a":"\\u12"}', ("invalid \\u escape", 6, None)),
    (b'{"a":"\\u12g4"}', ("invalid \\u escape", 6, None)),
    (b'{"a":"\\u0000"}', ("NUL in string", 6, None)),
    (b'{"a":"\\u00e9"}', ("non-ASCII \\u escape", 6, None)),
    (b'{"a":"\\ud83d\\ude00"}', ("non-ASCII \\u escape", 6, None)),
    (b'{"a":"x\ty"}', ("control byte in string", 7, 9)),
    (b'{"a":"x\x00y"}', ("control byte in string", 7, 0)),
    (b'{"a":1}\x00', ("control byte", 7, 0)),
    (b'{"a":\x01}', ("control byte", 5, 1)),
    (b'{"a":"\xc3\xa9"}', ("non-ASCII byte", 6, 0xC3)),
    (b'\xef\xbb\xbf{"a":1}', ("non-ASCII byte", 0, 0xEF)),
    (b'{"a":01}', ("invalid number", 5, None)),
    (b'{"a":-}', ("invalid number", 5, None)),
    (b'{"a":1.}', ("invalid number", 5, None)),
    (b'{"a":.5}', ("expected a value", 5, None)),
    (b'{"a":1e}', ("invalid number", 5, None)),
    (b'{"a":+1}', ("expected a value", 5, None)),
    (b'{"a":NaN}', ("expected a value", 5, None)),
    (b'{"a":Infinity}', ("expected a value", 5, None)),
    (b'{"a":tru}', ("invalid literal", 5, None)),
    (b'{"a":True}', ("expected a value", 5, None)),
    (b'{"a":nulls}', ("expected ',' or '}'", 9, None)),
    (b'{"a":1}{"b":2}', ("trailing data after the object", 7, None)),
    (b'{"a":1} x', ("trailing data after the object", 8, None)),
    (b'{"a":' + b"[" * 7 + b"]" * 7 + b"}", [("a", "array", None)]),
    (b'{"a":' + b"[" * 8 + b"]" * 8 + b"}", ("nesting too deep", 12, None)),
    (b'{"a":' + b'[{"b":' * 600, ("nesting too deep", 24, None)),
    (b"[" * 4096, ("not an object", 0, None)),
    (b'{"a":"' + b"x" * 4088 + b'"}', [("a", "string", "x" * 4088)]),
    (b'{"a":"' + b"x" * 4089 + b'"}', ("message too long", 4096, None)),
]


def json_expected(expected: Any) -> dict[str, Any]:
    if isinstance(expected, list):
        return {"error": None, "members": [list(m) for m in expected]}
    reason, offset, byte = expected
    return {"error": reason, "offset": offset, "byte": byte}


@pytest.mark.parametrize(
    ("text", "expected"), JSON_CASES, ids=[repr(t[:40]) for t, _ in JSON_CASES]
)
def test_json_reader(host_build: Path, text: bytes, expected: Any) -> None:
    (got,) = run_driver(host_build, [f"json {text.hex()}"])
    assert got == json_expected(expected)


class Rejected(Exception):
    """Python's verdict: the reader must reject this text."""


def python_verdict(text: bytes) -> list[list[Any]] | None:
    """The reader's expected result: Python's json module plus the reader's documented limits."""
    if len(text) > 4096 or any(b >= 0x80 for b in text):
        return None

    def pairs(items: list[tuple[str, Any]]) -> Pairs:
        return Pairs(items)  # not a dict: duplicate keys must all be checked

    def constant(name: str) -> Any:
        raise Rejected(name)  # NaN, Infinity: not JSON

    try:
        value = json.loads(text.decode("ascii"), object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, Rejected):
        return None
    if not isinstance(value, Pairs) or depth(value) > 8 or len(value) > 32:
        return None
    if any(not plain_ascii(s) for s in strings(value)):
        return None
    kinds = {
        type(None): "null",
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        Pairs: "object",
    }
    return [[k, kinds[type(v)], v if isinstance(v, str) else None] for k, v in value]


class Pairs(list[tuple[str, Any]]):
    """A decoded JSON object as its list of (key, value) pairs, duplicates included."""


def depth(value: Any) -> int:
    if isinstance(value, Pairs):
        return 1 + max((depth(v) for _, v in value), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Pairs):
        for k, v in value:
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def plain_ascii(s: str) -> bool:
    return all(0 < ord(c) < 0x80 for c in s)


def random_json(rng: random.Random, level: int) -> str:
    """A random JSON text fragment: valid by construction, with optional whitespace and escapes."""
    ws = rng.choice(["", "", " ", "\n", "\t ", "\r\n"])
    kind = rng.randrange(8 if level < 10 else 5) if level else 7  # the top is mostly an object
    if kind == 0:
        return rng.choice(["null", "true", "false"])
    if kind == 1:
        return rng.choice(["0", "-0", "12", "-3.25", "1e9", "2E-2", "7.0e+1", "123456789012345"])
    if kind in (2, 3, 4):
        alphabet = 'abc"\\/\b\n\t\x7f\x01'
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
        out = json.dumps(s)
        if rng.random() < 0.05:
            out = out[:-1] + rng.choice(["\\u0041", "\\u00e9", "\\u0000", "\\/", "\\u007F"]) + '"'
        return out
    if kind == 5:
        items = [random_json(rng, level + 1) for _ in range(rng.randrange(4))]
        return "[" + ws + ("," + ws).join(items) + ws + "]"
    members = [
        random_json(rng, 99) if rng.random() < 0.03 else json.dumps(rng.choice(["when", "a", "b"]))
        for _ in range(rng.randrange(5))
    ]
    body = ("," + ws).join(f"{m}{ws}:{ws}{random_json(rng, level + 1)}" for m in members)
    return "{" + ws + body + ws + "}"


def mutate(rng: random.Random, text: bytes) -> bytes:
    """One random edit: most differential cases should be almost-valid."""
    data = bytearray(text)
    pos = rng.randrange(len(data) + 1)
    op = rng.randrange(3)
    if op == 0 and pos < len(data):
        del data[pos]
    elif op == 1:
        data.insert(pos, rng.choice(b'{}[]:,"\\ 0-eE.tfnu\x00\x1f\x80\xff'))
    elif pos < len(data):
        data[pos] = rng.randrange(256)
    return bytes(data)


def test_json_reader_agrees_with_python(host_build: Path) -> None:
    """Differential test: 4000 random texts, accepted exactly when Python accepts them."""
    rng = random.Random(20240611)
    texts: list[bytes] = []
    while len(texts) < 4000:
        text = random_json(rng, 0).encode("ascii")
        if rng.random() < 0.4:
            text = mutate(rng, text)
        texts.append(text)
    results = run_driver(host_build, [f"json {t.hex()}" for t in texts])
    accepted = 0
    for text, got in zip(texts, results, strict=True):
        want = python_verdict(text)
        if want is None:
            assert got["error"] is not None, text
        else:
            accepted += 1
            assert got == {"error": None, "members": want}, text
    # The generator must exercise both sides, or the test proves nothing.
    print(f"accepted {accepted} of {len(texts)}")
    assert 800 < accepted < 3200


# --- Protocol state machine --------------------------------------------------------------------


@dataclass(frozen=True)
class Fx:
    """The effects expected from one step; the driver's output must equal this exactly."""

    reply: str = "untouched"  # what happens to control/shutdown: untouched/clear/delete/write
    reply_value: str | None = None
    ack: bool = False  # control/testing acknowledged with ""
    console: tuple[str, ...] = ()
    state: str | None = None  # data/test-vm/state written (None: not written)
    armed: str | None = None
    last_error: str | None = None
    action: str = "none"
    # Section 7: what the Xen side waits for next (hang/timer), and a late ack's condition.
    wait: str | None = None
    wait_ms: int = 0
    wait_forever: bool = False
    cancel_timer: bool = False
    expect: str | None = None
    # Section 8: the xenstore pressure a valid message asks for (None: not asked).
    xs_nodes: int | None = None
    xs_watches: int | None = None
    # Section 9: the balloon's percent a valid message sets (None: not asked).
    balloon_percent: int | None = None

    def as_driver_output(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reply": self.reply}
        if self.reply_value is not None:
            out["reply_value"] = self.reply_value
        out["ack_testing"] = self.ack
        out["console"] = "".join(line + "\n" for line in self.console)
        for key in ("state", "armed", "last_error"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["action"] = self.action
        if self.wait is not None:
            out["wait"] = self.wait
            out["wait_ms"] = self.wait_ms
            if self.wait_forever:
                out["wait_forever"] = True
        if self.cancel_timer:
            out["cancel_timer"] = True
        if self.expect is not None:
            out["expect"] = self.expect
        for key in ("xs_nodes", "xs_watches", "balloon_percent"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


NOTHING = Fx()


@dataclass(frozen=True)
class Step:
    """One event fed to the state machine: shutdown, testing, *-missing, refused, resume, status."""

    event: str
    value: str | bytes = ""
    expect: Fx = field(default_factory=Fx)

    def command(self) -> str:
        if self.event in ("shutdown", "testing"):
            return f"{self.event} {as_bytes(self.value).hex()}"
        return f"{self.event} {self.value!s}".strip()


def arm(ack: str, action: str, replaces: str | None = None) -> Step:
    """A valid onshutdown message and its expected effects (PROTOCOL.md section 3 and 5)."""
    canonical = armed_json(ack, action)
    console = (f"disarmed: {replaces}",) if replaces else ()
    return Step(
        "testing",
        canonical,
        Fx(ack=True, console=(*console, f"armed: {canonical}"), state="armed", armed=canonical),
    )


def request(word: str) -> Step:
    """A plain control/shutdown request with nothing armed (PROTOCOL.md section 2)."""
    performed = "poweroff" if word == "halt" else word
    return Step(
        "shutdown",
        word,
        Fx(
            reply="clear",
            console=(f"shutdown request: {word}", ACTION_LINE[performed]),
            state="suspending" if word == "suspend" else None,
            action=performed,
        ),
    )


def bogus(message: str | bytes, reason: str) -> Step:
    return Step(
        "testing",
        message,
        Fx(ack=True, console=(f"bogus command: {reason}",), last_error=reason),
    )


def now(action: str) -> Step:
    return Step(
        "testing",
        json.dumps({"when": "now", "action": action}),
        Fx(
            ack=True,
            console=(f"testing: now {action}", ACTION_LINE[PERFORMED[action]]),
            state="suspending" if action == "suspend" else None,
            action=PERFORMED[action],
        ),
    )


REPLY_FOR_ACK = {"ok": "clear", "none": "untouched", "delete": "delete", "": "clear"}


def fired(ack: str, action: str, by: str = "poweroff") -> Step:
    """A control/shutdown request that fires the armed instruction (ack, action)."""
    performed = PERFORMED[action]
    return Step(
        "shutdown",
        by,
        Fx(
            reply=REPLY_FOR_ACK.get(ack, "write"),
            reply_value=None if ack in REPLY_FOR_ACK else ack,
            console=(
                f"shutdown request: {by}",
                f"armed instruction fires: {armed_json(ack, action)}",
                ACTION_LINE[performed],
            ),
            state="suspending" if performed == "suspend" else "ready",
            armed="",
            action=performed,
        ),
    )


def armed_and_fired(ack: str, action: str, by: str = "poweroff") -> list[Step]:
    """Arm (ack, action), then the request `by` fires it: the start of many scenarios."""
    return [arm(ack, action), fired(ack, action, by=by)]


def unknown(shown: str, value: str | bytes | None = None) -> Step:
    """A control/shutdown value (by default `shown`) that is no request we know: cleared, and
    said on the console as `shown` (PROTOCOL.md section 2)."""
    console = (f"unknown shutdown request: {shown}",)
    return Step("shutdown", shown if value is None else value, Fx(reply="clear", console=console))


STATUS_AT_BOOT = Fx(state="ready", armed="", last_error="")
ON = armed_json("none", "ignore")

# Section 2: values that are not requests we know: (name, value, as the console shows it).
UNKNOWN_REQUESTS: list[tuple[str, str | bytes, str]] = [
    ("s3", "s3", "s3"),
    ("ignore", "ignore", "ignore"),
    ("upper case", "POWEROFF", "POWEROFF"),
    ("trailing newline", "poweroff\n", "poweroff\\x0a"),
    ("trailing NUL", b"poweroff\x00", "poweroff\\x00"),
    ("binary", b"\xff\x01", "\\xff\\x01"),
    ("4000 bytes", "x" * 4000, "x" * 160 + "...(4000 bytes)"),
]

SCENARIOS: dict[str, list[Step]] = {
    # Section 5: the status published at boot.
    "boot status": [Step("status", expect=STATUS_AT_BOOT)],
    # Section 2: the toolstack's words.
    **{f"request {w}": [request(w)] for w in ("poweroff", "halt", "reboot", "crash", "suspend")},
    "suspend then resume in a new domain": [
        request("suspend"),
        Step("resume", "new", STATUS_AT_BOOT),
    ],
    "suspend then cancelled resume": [
        request("suspend"),
        Step("resume", "cancelled", STATUS_AT_BOOT),
    ],
    "empty value is not a request": [Step("shutdown", "", NOTHING)],
    "missing key is not a request": [Step("shutdown-missing", "", NOTHING)],
    **{
        f"unknown request {name}": [unknown(shown, value)]
        for name, value, shown in UNKNOWN_REQUESTS
    },
    "a cleared request can be repeated": [
        request("reboot"),
        Step("shutdown", ""),
        request("reboot"),
    ],
    "a refused acknowledgement leaves the request; a later event is a request again": [
        unknown("s3"),
        Step("refused", "shutdown", NOTHING),
        unknown("s3"),
        Step("shutdown", "reboot", request("reboot").expect),
    ],
    # Section 3: `when: now` with each action.
    **{f"now {a}": [now(a)] for a in ACTIONS},
    "now with ack is fine, ack ignored (even of the wrong type)": [
        Step(
            "testing",
            '{"when":"now","action":"reboot","ack":42}',
            now("reboot").expect,
        )
    ],
    # Section 3: `when: onshutdown` with each ack mode and action, fired by a request.
    **{
        f"onshutdown ack={ack} action={a}": [arm(ack, a), fired(ack, a)]
        for ack in ("ok", "none", "delete", "no-such-thing", "")
        for a in ACTIONS
    },
    "armed instruction fires on any non-empty request": armed_and_fired("ok", "reboot", by="s3"),
    "armed instruction fires on a request the toolstack repeats": [
        *armed_and_fired("ok", "ignore", by="reboot"),
        Step("shutdown", ""),
        request("reboot"),
    ],
    "one-shot: the next request after firing is normal": [
        *armed_and_fired("ok", "ignore"),
        Step("shutdown", ""),
        request("poweroff"),
    ],
    # Section 2, the retry rule: xenopsd rewrites the same value (ring-level coalescing makes
    # its two oxenstored events one, see test_ring_client).
    "ack none: a later event that finds the value again is a request (a retry)": [
        *armed_and_fired("none", "ignore", by="poweroff"),
        request("poweroff"),
    ],
    "ack none: clearing the key re-arms the same value": [
        *armed_and_fired("none", "ignore", by="poweroff"),
        Step("shutdown", "", NOTHING),
        request("poweroff"),
    ],
    "ack none: deleting the key re-arms the same value": [
        *armed_and_fired("none", "ignore", by="poweroff"),
        Step("shutdown-missing", "", NOTHING),
        request("poweroff"),
    ],
    "ack string: the event of our own write is not a request": [
        *armed_and_fired("busy", "ignore", by="reboot"),
        Step("shutdown", "busy", NOTHING),
        request("reboot"),
    ],
    "ack string: only the first event finding our string is ours": [
        *armed_and_fired("busy", "ignore", by="reboot"),
        Step("shutdown", "busy", NOTHING),
        unknown("busy"),
    ],
    "ack string: a request written before our own event arrived is a request": [
        *armed_and_fired("busy", "ignore", by="reboot"),
        request("poweroff"),
        unknown("busy"),
    ],
    "ack string refused: no event of ours will come, the request stays": [
        *armed_and_fired("busy", "ignore", by="poweroff"),
        Step("refused", "shutdown", NOTHING),
        unknown("busy"),
    ],
    "ack string refused, then a cancelled suspend: nothing is re-read or acted on": [
        *armed_and_fired("foo", "ignore", by="poweroff"),
        Step("refused", "shutdown", NOTHING),
        now("suspend"),
        Step("resume", "cancelled", STATUS_AT_BOOT),
        Step("status", expect=STATUS_AT_BOOT),
    ],
    "ack string refused, then a new domain: its first event finding the request is not one": [
        *armed_and_fired("foo", "ignore", by="poweroff"),
        Step("refused", "shutdown", NOTHING),
        now("suspend"),
        Step("resume", "new", STATUS_AT_BOOT),
        Step("shutdown", "poweroff", NOTHING),
        request("poweroff"),
    ],
    'ack "": the same as ok': armed_and_fired("", "reboot"),
    "ack string with escapes is decoded and kept canonical": [
        Step(
            "testing",
            '{"when":"onshutdown","ack":"a\\"b\\u0063\\/","action":"halt"}',
            Fx(
                ack=True,
                console=('armed: {"when":"onshutdown","ack":"a\\x5c"bc/","action":"halt"}',),
                state="armed",
                armed='{"when":"onshutdown","ack":"a\\"bc/","action":"halt"}',
            ),
        ),
        Step(
            "shutdown",
            "poweroff",
            Fx(
                reply="write",
                reply_value='a"bc/',
                console=(
                    "shutdown request: poweroff",
                    'armed instruction fires: {"when":"onshutdown","ack":"a\\x5c"bc/",'
                    '"action":"halt"}',
                    "powering off",
                ),
                state="ready",
                armed="",
                action="poweroff",
            ),
        ),
    ],
    "a newer valid message replaces the armed one": [
        arm("none", "ignore"),
        arm("ok", "crash", replaces=ON),
        fired("ok", "crash"),
    ],
    "an invalid message leaves the armed one in place": [
        arm("none", "ignore"),
        bogus('{"when":"later","action":"reboot"}', "unknown when: later"),
        Step("status", expect=Fx(state="armed", armed=ON, last_error="unknown when: later")),
        fired("none", "ignore"),
    ],
    "a now message replaces (removes) the armed one": [
        arm("none", "ignore"),
        Step(
            "testing",
            '{"when":"now","action":"ignore"}',
            Fx(
                ack=True,
                console=(f"disarmed: {ON}", "testing: now ignore", "ignoring"),
                state="ready",
                armed="",
            ),
        ),
        request("poweroff"),
    ],
    "now suspend while armed: disarmed, suspending": [
        arm("ok", "reboot"),
        Step(
            "testing",
            '{"when":"now","action":"suspend"}',
            Fx(
                ack=True,
                console=(
                    f"disarmed: {armed_json('ok', 'reboot')}",
                    "testing: now suspend",
                    "suspending",
                ),
                state="suspending",
                armed="",
                action="suspend",
            ),
        ),
        Step("resume", "new", STATUS_AT_BOOT),
    ],
    "armed survives a request-free suspend and resume": [
        arm("none", "ignore"),
        Step("resume", "cancelled", Fx(state="armed", armed=ON, last_error="")),
        fired("none", "ignore"),
    ],
    "unknown fields are ignored, also nested ones": [
        Step(
            "testing",
            '{"version":2,"when":"onshutdown","extra":{"x":[1,{"y":null}]},"ack":"none",'
            '"action":"ignore","z":"q"}',
            arm("none", "ignore").expect,
        )
    ],
    "JSON whitespace is accepted": [
        Step(
            "testing",
            '{ "when" : "onshutdown",\n "ack" : "none", "action" : "ignore" }',
            arm("none", "ignore").expect,
        )
    ],
    "empty testing value and missing key are not messages": [
        Step("testing", "", NOTHING),
        Step("testing-missing", "", NOTHING),
    ],
    "a refused testing acknowledgement: same message not processed twice": [
        arm("none", "ignore"),
        Step("refused", "testing", NOTHING),
        Step("testing", armed_json("none", "ignore"), NOTHING),
        Step("testing", "", NOTHING),
        arm("none", "ignore", replaces=ON),
    ],
    "same message again after our acknowledgement is processed again": [
        now("ignore"),
        Step("testing", "", NOTHING),
        now("ignore"),
    ],
    "last-error stays after a later valid message": [
        bogus("x", "not an object at offset 0"),
        now("ignore"),
        Step("status", expect=Fx(state="ready", armed="", last_error="not an object at offset 0")),
    ],
    "a new domain: the re-registered watch's first event finding what we left is not a request": [
        *armed_and_fired("none", "ignore", by="poweroff"),
        Step("testing", '{"when":"now","action":"suspend"}', now("suspend").expect),
        Step("resume", "new", STATUS_AT_BOOT),
        Step("shutdown", "poweroff", NOTHING),
        request("poweroff"),
    ],
    "a new domain: the first event finding another value is a request": [
        *armed_and_fired("none", "ignore", by="poweroff"),
        now("suspend"),
        Step("resume", "new", STATUS_AT_BOOT),
        request("reboot"),
    ],
    "a new domain: our own ack string left in the key is not a request": [
        *armed_and_fired("busy", "suspend", by="poweroff"),
        Step("resume", "new", STATUS_AT_BOOT),
        Step("shutdown", "busy", NOTHING),
        unknown("busy"),
    ],
    "a new domain with nothing left: the first event is a request (obeyed as at boot)": [
        now("suspend"),
        Step("resume", "new", STATUS_AT_BOOT),
        request("poweroff"),
    ],
    "after a cancelled suspend an event finding the value left is a request": [
        *armed_and_fired("none", "ignore", by="poweroff"),
        now("suspend"),
        Step("resume", "cancelled", STATUS_AT_BOOT),
        request("poweroff"),
    ],
}


# Section 7 (1.2): timed behaviour. The Xen side hangs or sets its timer as `wait` says and calls
# `timer` when it is over; a late acknowledgement is written only if the key still holds `expect`.
TIMED = armed_json("ok", "poweroff", hang_ms=300, ack_delay_ms=500, action_delay_ms=700)


def delayed_now(action: str, ms: int) -> Step:
    """A valid `now` message with action_delay_ms: acknowledged, the timer set (section 7)."""
    return Step(
        "testing",
        json.dumps({"when": "now", "action": action, "action_delay_ms": ms}, separators=(",", ":")),
        Fx(
            ack=True,
            console=(f"testing: now {action}", f"delaying {action} by {ms} ms"),
            wait="timer",
            wait_ms=ms,
        ),
    )


LATE_ACK = armed_json("busy", "reboot", ack_delay_ms=40)
ARM_LATE_ACK = Step(
    "testing",
    LATE_ACK,
    Fx(ack=True, console=(f"armed: {LATE_ACK}",), state="armed", armed=LATE_ACK),
)
FIRE_LATE_ACK = Step(
    "shutdown",
    "reboot",
    Fx(
        console=(
            "shutdown request: reboot",
            f"armed instruction fires: {LATE_ACK}",
            "acknowledging in 40 ms",
        ),
        state="ready",
        armed="",
        wait="timer",
        wait_ms=40,
    ),
)
SCENARIOS.update(
    {
        "timed: hang, late ack, delayed action, in that order": [
            Step(
                "testing",
                '{"action_delay_ms":700,"ack_delay_ms":500,"hang_ms":300,'
                '"when":"onshutdown","ack":"ok","action":"poweroff"}',
                Fx(ack=True, console=(f"armed: {TIMED}",), state="armed", armed=TIMED),
            ),
            Step(
                "shutdown",
                "poweroff",
                Fx(
                    console=(
                        "shutdown request: poweroff",
                        f"armed instruction fires: {TIMED}",
                        "hanging for 300 ms",
                    ),
                    state="ready",
                    armed="",
                    wait="hang",
                    wait_ms=300,
                ),
            ),
            Step(
                "timer",
                "",
                Fx(console=("hang over", "acknowledging in 500 ms"), wait="timer", wait_ms=500),
            ),
            Step(
                "timer",
                "",
                Fx(
                    reply="clear",
                    console=("delaying poweroff by 700 ms",),
                    wait="timer",
                    wait_ms=700,
                    expect="poweroff",
                ),
            ),
            Step("timer", "", Fx(console=("powering off",), action="poweroff")),
            # Done: a stray timer does nothing.
            Step("timer", "", NOTHING),
        ],
        "timed: a late ack string is written only over the request": [
            ARM_LATE_ACK,
            FIRE_LATE_ACK,
            Step(
                "timer",
                "",
                Fx(
                    reply="write",
                    reply_value="busy",
                    console=("rebooting",),
                    action="reboot",
                    expect="reboot",
                ),
            ),
            # The event of our own write is not a request.
            Step("shutdown", "busy", NOTHING),
        ],
        "timed: the request gone before the late ack: nothing written, action dropped": [
            ARM_LATE_ACK,
            FIRE_LATE_ACK,
            Step(
                "answer-lost",
                "",
                Fx(console=("request gone before the late acknowledgement: reboot dropped",)),
            ),
            Step("timer", "", NOTHING),
        ],
        "timed: a request during the delay cancels the timed steps and is obeyed": [
            delayed_now("reboot", 2000),
            Step(
                "shutdown",
                "poweroff",
                Fx(
                    reply="clear",
                    console=(
                        "timed reboot cancelled",
                        "shutdown request: poweroff",
                        "powering off",
                    ),
                    action="poweroff",
                    cancel_timer=True,
                ),
            ),
            Step("timer", "", NOTHING),
        ],
        "timed: a valid message during the delay cancels; an invalid one does not": [
            delayed_now("crash", 10),
            bogus("nope", "not an object at offset 0"),
            Step("timer", "", Fx(console=("crashing",), action="crash")),
            delayed_now("crash", 10),
            Step(
                "testing",
                '{"when":"now","action":"ignore"}',
                Fx(
                    ack=True,
                    console=("timed crash cancelled", "testing: now ignore", "ignoring"),
                    cancel_timer=True,
                ),
            ),
        ],
        "timed: hang for good": [
            Step(
                "testing",
                '{"when":"now","action":"ignore","hang_ms":"forever"}',
                Fx(
                    ack=True,
                    console=("testing: now ignore", "hanging for good"),
                    wait="hang",
                    wait_forever=True,
                ),
            ),
        ],
        "timed: ack_delay_ms is not even read with now; zeros are no timing": [
            Step(
                "testing",
                '{"when":"now","action":"ignore","ack_delay_ms":"x","hang_ms":0}',
                Fx(ack=True, console=("testing: now ignore", "ignoring")),
            ),
            Step(
                "testing",
                '{"when":"onshutdown","ack":"ok","action":"ignore","hang_ms":0,'
                '"ack_delay_ms":0,"action_delay_ms":0}',
                arm("ok", "ignore").expect,
            ),
            fired("ok", "ignore"),
        ],
        "timed: the longest delay is an hour; a delayed suspend suspends when it fires": [
            delayed_now("suspend", 3600000),
            Step("timer", "", Fx(console=("suspending",), state="suspending", action="suspend")),
            Step("resume", "new", STATUS_AT_BOOT),
        ],
    }
)


# Section 8 (1.2): xenstore pressure fields are handed on with either `when`; they are not part
# of the instruction (data/test-vm/armed does not show them), and 0 is a count like any other.
PRESSURE_ARMED = armed_json("ok", "ignore")
SCENARIOS.update(
    {
        "pressure: a now message hands both counts on": [
            Step(
                "testing",
                '{"when":"now","action":"ignore","xs_nodes":200,"xs_watches":50}',
                Fx(
                    ack=True,
                    console=("testing: now ignore", "ignoring"),
                    xs_nodes=200,
                    xs_watches=50,
                ),
            ),
        ],
        "pressure: with onshutdown, one count, the largest; armed without it": [
            Step(
                "testing",
                '{"when":"onshutdown","ack":"ok","action":"ignore","xs_watches":100000}',
                Fx(
                    ack=True,
                    console=(f"armed: {PRESSURE_ARMED}",),
                    state="armed",
                    armed=PRESSURE_ARMED,
                    xs_watches=100000,
                ),
            ),
            fired("ok", "ignore"),
        ],
        "pressure: 0 clears; a message without the fields asks nothing": [
            Step(
                "testing",
                '{"when":"now","action":"ignore","xs_nodes":0}',
                Fx(ack=True, console=("testing: now ignore", "ignoring"), xs_nodes=0),
            ),
            now("ignore"),
        ],
        "pressure: an invalid count asks nothing and leaves the armed instruction": [
            arm("none", "ignore"),
            bogus(
                '{"when":"now","action":"ignore","xs_nodes":5,"xs_watches":-5}',
                "bad xs_watches: -5",
            ),
            fired("none", "ignore"),
        ],
    }
)


# Section 9 (1.2): balloon_percent, 0..100, is handed on with either `when` like the pressure
# counts; it is not part of the instruction.
SCENARIOS.update(
    {
        "balloon: a now message hands the percent on": [
            Step(
                "testing",
                '{"when":"now","action":"ignore","balloon_percent":50}',
                Fx(ack=True, console=("testing: now ignore", "ignoring"), balloon_percent=50),
            ),
        ],
        "balloon: with onshutdown, 0 and 100 are percents like any other": [
            Step(
                "testing",
                '{"when":"onshutdown","ack":"ok","action":"ignore","balloon_percent":0}',
                Fx(
                    ack=True,
                    console=(f"armed: {PRESSURE_ARMED}",),
                    state="armed",
                    armed=PRESSURE_ARMED,
                    balloon_percent=0,
                ),
            ),
            Step(
                "testing",
                '{"when":"now","action":"ignore","balloon_percent":100}',
                Fx(
                    ack=True,
                    console=(f"disarmed: {PRESSURE_ARMED}", "testing: now ignore", "ignoring"),
                    state="ready",
                    armed="",
                    balloon_percent=100,
                ),
            ),
        ],
        "balloon: an invalid percent asks nothing and leaves the armed instruction": [
            arm("none", "ignore"),
            *(
                bogus(f'{{"when":"now","action":"ignore","balloon_percent":{bad}}}', reason)
                for bad, reason in (
                    ("101", "bad balloon_percent: 101"),
                    ("-1", "bad balloon_percent: -1"),
                    ("50.5", "bad balloon_percent: 50.5"),
                    ("1e2", "bad balloon_percent: 1e2"),
                )
            ),
            bogus(
                '{"when":"now","action":"ignore","balloon_percent":"50"}',
                "field balloon_percent: string",
            ),
            bogus(
                '{"when":"now","action":"ignore","balloon_percent":1,"balloon_percent":2}',
                "duplicate field: balloon_percent",
            ),
            fired("none", "ignore"),
        ],
    }
)


for _name, _message, _reason in BOGUS:
    SCENARIOS[f"bogus {_name}"] = [
        arm("none", "ignore"),
        bogus(_message, _reason),
        fired("none", "ignore"),
    ]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_protocol(host_build: Path, name: str) -> None:
    steps = SCENARIOS[name]
    results = run_driver(host_build, [s.command() for s in steps])
    for index, (step, got) in enumerate(zip(steps, results, strict=True)):
        # proto_write_refused has no effects; the driver answers {}.
        want = {} if step.event == "refused" else step.expect.as_driver_output()
        assert got == want, f"step {index}: {step.event} {step.value!r}"


def test_protocol_random_sequences_never_break_the_rules(host_build: Path) -> None:
    """Random events: every message is acknowledged, every request answered once per change."""
    rng = random.Random(7)
    pool = [
        *(b for _, b, _ in BOGUS),
        *(armed_json(a, b) for a in ("ok", "none", "zz") for b in ACTIONS),
    ]
    pool += [json.dumps({"when": "now", "action": a}) for a in ACTIONS]
    pool += [armed_json("ok", a, hang_ms=5, ack_delay_ms=5, action_delay_ms=5) for a in ACTIONS]
    pool += [json.dumps({"when": "now", "action": a, "action_delay_ms": 9}) for a in ACTIONS]
    commands: list[str] = []
    for _ in range(3000):
        roll = rng.random()
        if roll < 0.45:
            commands.append(f"testing {as_bytes(rng.choice(pool)).hex()}")
        elif roll < 0.9:
            value = rng.choice(["poweroff", "reboot", "s3", "", "busy", "zz"])
            commands.append(f"shutdown {value.encode().hex()}")
        else:
            commands.append(
                rng.choice(
                    ["resume new", "resume cancelled", "testing ", "shutdown-missing", "timer"]
                )
            )
    results = run_driver(host_build, commands)
    for command, got in zip(commands, results, strict=True):
        kind, _, arg = command.partition(" ")
        if kind == "testing":
            assert got["ack_testing"] is bool(arg), command
            assert got["reply"] == "untouched"
        if kind == "shutdown":
            assert not got["ack_testing"]
            if not arg:
                assert got == NOTHING.as_driver_output()
        if got.get("action", "none") == "suspend":
            assert got["state"] == "suspending"


# --- Section 8: the xenstore pressure machine (kernel/logic/pressure.c) --------------------------


def held(
    target: tuple[int, int],
    now: tuple[int, int],
    busy: bool = True,
    error: str = "",
    step: tuple[str, ...] | None = None,
    steps: int | None = None,
    active: bool = True,
) -> dict[str, Any]:
    """The driver's view of the pressure state (nodes, watches), after the step it took."""
    out: dict[str, Any] = {
        "target": list(target),
        "held": list(now),
        "busy": busy,
        "active": active,
        "error": error,
    }
    if step is not None:
        out["step"] = [int(x) if x.isdigit() else x for x in step]
    if steps is not None:
        out["steps"] = steps
    return out


def add(kind: str, index: int) -> tuple[str, ...]:
    return ("add", kind, str(index))


PRESSURE_SCENARIOS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "never asked: nothing to do, nothing restarts on resume": [
        ("pressure-step", held((0, 0), (0, 0), busy=False, active=False)),
        ("pressure-resume new", {"resumed": False}),
    ],
    "nodes first, then watches, one request each, then the report": [
        ("pressure-request 2 1", held((2, 1), (0, 0))),
        ("pressure-step", held((2, 1), (1, 0), step=add("nodes", 0))),
        ("pressure-step", held((2, 1), (2, 0), step=add("nodes", 1))),
        ("pressure-step", held((2, 1), (2, 1), step=add("watches", 0))),
        ("pressure-step", held((2, 1), (2, 1), busy=False, step=("done",))),
        ("pressure-step", held((2, 1), (2, 1), busy=False)),
    ],
    "0 nodes: one request for the directory; watches go one by one from the top": [
        ("pressure-request 4 3", held((4, 3), (0, 0))),
        ("pressure-run - - ", held((4, 3), (4, 3), busy=False, steps=8)),
        ("pressure-request 0 1", held((0, 1), (4, 3))),
        ("pressure-step", held((0, 1), (0, 3), step=("clear", "nodes", "3"))),
        ("pressure-step", held((0, 1), (0, 2), step=("remove", "watches", "2"))),
        ("pressure-step", held((0, 1), (0, 1), step=("remove", "watches", "1"))),
        ("pressure-step", held((0, 1), (0, 1), busy=False, step=("done",))),
    ],
    "fewer nodes, not none: the last ones go one by one; the other kind is kept": [
        ("pressure-request 5 2", held((5, 2), (0, 0))),
        ("pressure-run - - ", held((5, 2), (5, 2), busy=False, steps=8)),
        ("pressure-request 3 -", held((3, 2), (5, 2))),
        ("pressure-step", held((3, 2), (4, 2), step=("remove", "nodes", "4"))),
        ("pressure-step", held((3, 2), (3, 2), step=("remove", "nodes", "3"))),
        ("pressure-step", held((3, 2), (3, 2), busy=False, step=("done",))),
    ],
    "a quota stops its own kind where it is; the other kind carries on": [
        ("pressure-request 1500 120", held((1500, 120), (0, 0))),
        (
            "pressure-run 997 - EQUOTA",
            held((997, 120), (997, 120), busy=False, error="node 997: EQUOTA", steps=1119),
        ),
    ],
    "the first error is kept; a new request forgets it": [
        ("pressure-request 10 10", held((10, 10), (0, 0))),
        (
            "pressure-run 4 2 E2BIG",
            held((4, 2), (4, 2), busy=False, error="node 4: E2BIG", steps=9),
        ),
        ("pressure-request - 3", held((4, 3), (4, 2))),
        (
            "pressure-step ENOSPC",
            held((4, 2), (4, 2), error="watch 2: ENOSPC", step=add("watches", 2)),
        ),
    ],
    "gone already counts as removed; EEXIST on a watch counts as held": [
        ("pressure-request 1 1", held((1, 1), (0, 0))),
        ("pressure-step", held((1, 1), (1, 0), step=add("nodes", 0))),
        ("pressure-step EEXIST", held((1, 1), (1, 1), step=add("watches", 0))),
        ("pressure-request 0 0", held((0, 0), (1, 1))),
        ("pressure-step ENOENT", held((0, 0), (0, 1), step=("clear", "nodes", "0"))),
        ("pressure-step ENOENT", held((0, 0), (0, 0), step=("remove", "watches", "0"))),
    ],
    "a removal refused stops there and is reported": [
        ("pressure-request 3 0", held((3, 0), (0, 0))),
        ("pressure-run - - ", held((3, 0), (3, 0), busy=False, steps=4)),
        ("pressure-request 0 -", held((0, 0), (3, 0))),
        (
            "pressure-step EACCES",
            held((3, 0), (3, 0), error="nodes: EACCES", step=("clear", "nodes", "2")),
        ),
        ("pressure-step", held((3, 0), (3, 0), busy=False, error="nodes: EACCES", step=("done",))),
    ],
    "a new domain holds none: the same targets again, the error kept; cancelled: nothing": [
        ("pressure-request 3 2", held((3, 2), (0, 0))),
        (
            "pressure-run 2 - EQUOTA",
            held((2, 2), (2, 2), busy=False, error="node 2: EQUOTA", steps=6),
        ),
        ("pressure-resume cancelled", {"resumed": False}),
        ("pressure-step", held((2, 2), (2, 2), busy=False, error="node 2: EQUOTA")),
        ("pressure-resume new", {"resumed": True}),
        ("pressure-step", held((2, 2), (1, 0), error="node 2: EQUOTA", step=add("nodes", 0))),
        ("pressure-run - - ", held((2, 2), (2, 2), busy=False, error="node 2: EQUOTA", steps=4)),
    ],
}


@pytest.mark.parametrize("name", list(PRESSURE_SCENARIOS))
def test_pressure(host_build: Path, name: str) -> None:
    steps = PRESSURE_SCENARIOS[name]
    results = run_driver(host_build, [command for command, _ in steps])
    for index, ((command, want), got) in enumerate(zip(steps, results, strict=True)):
        assert got == want, f"step {index}: {command}"
