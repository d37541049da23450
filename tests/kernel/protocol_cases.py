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


def armed_json(ack: str, action: str) -> str:
    """The canonical JSON the kernel publishes in data/test-vm/armed for this instruction."""
    return json.dumps({"when": "onshutdown", "ack": ack, "action": action}, separators=(",", ":"))


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
    (
        "too many fields",
        "{" + ",".join(f'"f{i}":{i}' for i in range(33)) + "}",
        "too many fields at offset 269",
    ),
]
