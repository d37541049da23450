"""The protocol's expected outcomes (PROTOCOL.md sections 2, 3, 5), shared by the host unit tests
and the lab tests, so one table is checked both against the C code on the host and on real Xen.
"""

from __future__ import annotations

import json

ACTIONS = ("poweroff", "halt", "reboot", "crash", "suspend", "ignore")
# PROTOCOL.md section 2/3: what each word makes the kernel do, and the line it prints last.
PERFORMED = {
    "poweroff": "poweroff",
    "halt": "poweroff",
    "reboot": "reboot",
    "crash": "crash",
    "suspend": "suspend",
    "ignore": "none",
}
ACTION_LINE = {
    "poweroff": "powering off",
    "reboot": "rebooting",
    "crash": "crashing",
    "suspend": "suspending",
    "none": "ignoring",
}


def armed_json(ack: str, action: str, **timing: int | str) -> str:
    """The canonical JSON the kernel publishes in data/test-vm/armed for this instruction
    (section 7's timed fields, when given, in the order hang_ms, ack_delay_ms, action_delay_ms)."""
    fields: dict[str, int | str] = {"when": "onshutdown", "ack": ack, "action": action}
    for name in ("hang_ms", "ack_delay_ms", "action_delay_ms"):
        if timing.get(name):
            fields[name] = timing[name]
    return json.dumps(fields, separators=(",", ":"))


# Section 3: invalid messages and the exact reason recorded in data/test-vm/last-error.
BOGUS: list[tuple[str, str | bytes, str]] = [
    ("not JSON", "poweroff", "not an object at offset 0"),
    ("array", '["when","now"]', "not an object at offset 0"),
    ("string", '"now"', "not an object at offset 0"),
    ("null", "null", "not an object at offset 0"),
    ("truncated", '{"when":"now"', "unexpected end of input at offset 13"),
    ("single quotes", "{'when':'now'}", "expected a string key at offset 1"),
    ("trailing comma", '{"when":"now","action":"ignore",}', "expected a string key at offset 32"),
    (
        "two objects",
        '{"when":"now","action":"ignore"}{}',
        "trailing data after the object at offset 32",
    ),
    ("empty object", "{}", "missing field: when"),
    ("missing action", '{"when":"now"}', "missing field: action"),
    ("missing ack", '{"when":"onshutdown","action":"reboot"}', "missing field: ack"),
    ("when wrong type", '{"when":1,"action":"reboot"}', "field when: number"),
    ("when null", '{"when":null,"action":"reboot"}', "field when: null"),
    ("action wrong type", '{"when":"now","action":["reboot"]}', "field action: array"),
    ("ack wrong type", '{"when":"onshutdown","action":"reboot","ack":true}', "field ack: boolean"),
    ("ack object", '{"when":"onshutdown","action":"reboot","ack":{}}', "field ack: object"),
    ("unknown when", '{"when":"later","action":"reboot"}', "unknown when: later"),
    ("unknown action", '{"when":"now","action":"explode"}', "unknown action: explode"),
    ("action case", '{"when":"now","action":"Reboot"}', "unknown action: Reboot"),
    (
        "action with NUL-free control",
        '{"when":"now","action":"reboot\\n"}',
        "unknown action: reboot\\x0a",
    ),
    (
        "long unknown action",
        '{"when":"now","action":"' + "y" * 100 + '"}',
        "unknown action: " + "y" * 64 + "...(100 bytes)",
    ),
    ("duplicate when", '{"when":"now","when":"now","action":"ignore"}', "duplicate field: when"),
    (
        "duplicate action",
        '{"when":"now","action":"ignore","action":"reboot"}',
        "duplicate field: action",
    ),
    (
        "duplicate ack",
        '{"when":"onshutdown","ack":"ok","ack":"none","action":"ignore"}',
        "duplicate field: ack",
    ),
    (
        "non-ASCII",
        '{"when":"now","action":"ignore","x":"é"}'.encode(),
        "non-ASCII byte 0xc3 at offset 37",
    ),
    ("latin-1 byte", b'{"when":"now","action":"ignor\xe9"}', "non-ASCII byte 0xe9 at offset 29"),
    (
        "non-ASCII escape",
        '{"when":"now","action":"ignore","x":"\\u00e9"}',
        "non-ASCII \\u escape at offset 37",
    ),
    (
        "control byte in string",
        b'{"when":"now","action":"ig\x01nore"}',
        "control byte in string 0x01 at offset 26",
    ),
    (
        "control byte outside",
        b'{"when":"now",\x07"action":"ignore"}',
        "control byte 0x07 at offset 14",
    ),
    ("NUL byte", b'{"when":"now"\x00}', "control byte 0x00 at offset 13"),
    ("NUL escape", '{"when":"now","action":"ignore","x":"\\u0000"}', "NUL in string at offset 37"),
    (
        "deep nesting",
        '{"x":' + "[" * 100 + "]" * 100 + ',"when":"now","action":"ignore"}',
        "nesting too deep at offset 12",
    ),
    ("4096-byte string", '"' + "a" * 4094 + '"', "not an object at offset 0"),
    (
        "over 4096 bytes",
        '{"when":"now","action":"ignore","pad":"' + "p" * 4100 + '"}',
        "message too long at offset 4096",
    ),
    # Section 7 (1.2): the timed fields.
    ("hang_ms negative", '{"when":"now","action":"ignore","hang_ms":-1}', "bad hang_ms: -1"),
    ("hang_ms fraction", '{"when":"now","action":"ignore","hang_ms":1.5}', "bad hang_ms: 1.5"),
    ("hang_ms exponent", '{"when":"now","action":"ignore","hang_ms":1e3}', "bad hang_ms: 1e3"),
    (
        "hang_ms over an hour",
        '{"when":"now","action":"ignore","hang_ms":3600001}',
        "bad hang_ms: 3600001",
    ),
    (
        "hang_ms eight digits",
        '{"when":"now","action":"ignore","hang_ms":10000000}',
        "bad hang_ms: 10000000",
    ),
    ("hang_ms word", '{"when":"now","action":"ignore","hang_ms":"soon"}', "field hang_ms: string"),
    ("hang_ms null", '{"when":"now","action":"ignore","hang_ms":null}', "field hang_ms: null"),
    (
        "action_delay_ms as a string",
        '{"when":"now","action":"reboot","action_delay_ms":"5"}',
        "field action_delay_ms: string",
    ),
    (
        "action_delay_ms forever",
        '{"when":"now","action":"reboot","action_delay_ms":"forever"}',
        "field action_delay_ms: string",
    ),
    (
        "ack_delay_ms negative",
        '{"when":"onshutdown","ack":"ok","action":"ignore","ack_delay_ms":-5}',
        "bad ack_delay_ms: -5",
    ),
    (
        "duplicate ack_delay_ms",
        '{"when":"onshutdown","ack":"ok","action":"ignore","ack_delay_ms":1,"ack_delay_ms":2}',
        "duplicate field: ack_delay_ms",
    ),
    # Section 8 (1.2): the xenstore pressure fields.
    ("xs_nodes negative", '{"when":"now","action":"ignore","xs_nodes":-1}', "bad xs_nodes: -1"),
    (
        "xs_nodes over the limit",
        '{"when":"now","action":"ignore","xs_nodes":100001}',
        "bad xs_nodes: 100001",
    ),
    ("xs_nodes fraction", '{"when":"now","action":"ignore","xs_nodes":2.0}', "bad xs_nodes: 2.0"),
    (
        "xs_watches as a string",
        '{"when":"now","action":"ignore","xs_watches":"50"}',
        "field xs_watches: string",
    ),
    (
        "duplicate xs_watches",
        '{"when":"onshutdown","ack":"ok","action":"ignore","xs_watches":1,"xs_watches":1}',
        "duplicate field: xs_watches",
    ),
    (
        "too many fields",
        "{" + ",".join(f'"f{i}":{i}' for i in range(33)) + "}",
        "too many fields at offset 269",
    ),
]
