"""The guest protocol (PROTOCOL.md): xenstore paths, request words and testing instructions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

SHUTDOWN = "control/shutdown"
TESTING = "control/testing"
FEATURES = ("control/feature-poweroff", "control/feature-reboot", "control/feature-suspend")
STATUS = "data/test-vm"
STATUS_KEYS = ("version", "state", "armed", "resumes", "last-error")

SHUTDOWN_REQUESTS = ("poweroff", "halt", "reboot", "crash", "suspend")
ACTIONS = (*SHUTDOWN_REQUESTS, "ignore")
WHEN = ("now", "onshutdown")
MAX_MESSAGE = 4096
# Section 7 (1.2): the timed fields, in the order the kernel's canonical JSON puts them.
TIMED_FIELDS = ("hang_ms", "ack_delay_ms", "action_delay_ms")
MAX_DELAY_MS = 3_600_000
FOREVER = "forever"
# Section 8 (1.2): xenstore pressure, how many nodes and watches the guest holds.
PRESSURE_FIELDS = ("xs_nodes", "xs_watches")
MAX_PRESSURE = 100_000
# Section 9 (1.2): the balloon, which part of what memory/target asks it to give back it meets.
BALLOON_PERCENT = "balloon_percent"
BALLOON_STATUS = ("kib", "target")  # under data/test-vm/balloon/, target written last

When = Literal["now", "onshutdown"]


@dataclass(frozen=True)
class Instruction:
    """One control/testing message."""

    when: str
    action: str
    ack: str | None = None
    hang_ms: int | str = 0  # or FOREVER
    ack_delay_ms: int = 0
    action_delay_ms: int = 0
    xs_nodes: int | None = None  # None: not asked (0 clears)
    xs_watches: int | None = None
    balloon_percent: int | None = None  # None: not asked (0 gives back nothing)

    def __post_init__(self) -> None:
        percent = self.balloon_percent
        if percent is not None and (not isinstance(percent, int) or not 0 <= percent <= 100):
            raise ValueError(f"balloon_percent must be 0 to 100, not {percent!r}")
        for name in PRESSURE_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 0 <= value <= MAX_PRESSURE):
                raise ValueError(f"{name} must be 0 to {MAX_PRESSURE}, not {value!r}")
        for name in TIMED_FIELDS:
            value = getattr(self, name)
            if name == "hang_ms" and value == FOREVER:
                continue
            if not isinstance(value, int) or not 0 <= value <= MAX_DELAY_MS:
                forever = ' or "forever"' if name == "hang_ms" else ""
                raise ValueError(f"{name} must be 0 to {MAX_DELAY_MS} ms{forever}, not {value!r}")
        if self.when not in WHEN:
            raise ValueError(f"when must be one of {', '.join(WHEN)}, not {self.when!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if self.when == "onshutdown" and not self.ack:
            raise ValueError("ack is required with when=onshutdown (ok, none, delete or a string)")

    def to_json(self) -> str:
        """Compact JSON, the form the kernel reads."""
        body: dict[str, str | int] = {
            "when": self.when,
            "ack": self.ack or "ok",
            "action": self.action,
        }
        if self.when == "now":
            del body["ack"]
        body |= {name: getattr(self, name) for name in TIMED_FIELDS if getattr(self, name)}
        body |= {n: getattr(self, n) for n in PRESSURE_FIELDS if getattr(self, n) is not None}
        if self.balloon_percent is not None:
            body[BALLOON_PERCENT] = self.balloon_percent
        text = json.dumps(body, separators=(",", ":"))
        if len(text) > MAX_MESSAGE or not text.isascii():
            raise ValueError("instruction does not fit a xenstore value (4096 ASCII bytes)")
        return text

    def same_as(self, armed_json: str) -> bool:
        """Whether the kernel's data/test-vm/armed describes this instruction."""
        try:
            armed = json.loads(armed_json)
        except ValueError:
            return False
        if not isinstance(armed, dict):
            return False
        return bool(
            armed.get("when") == self.when
            and armed.get("action") == self.action
            and (self.when == "now" or armed.get("ack") == self.ack)
            and all(armed.get(name, 0) == getattr(self, name) for name in TIMED_FIELDS)
        )


def guest_writable(domid: int) -> list[str]:
    """Permissions for a key dom0 writes and the guest answers: owner dom0, guest rw."""
    return ["n0", f"b{domid}"]


# A `now` instruction with one of these actions ends the domain right after its ack.
ENDING_ACTIONS = ("poweroff", "halt", "reboot", "crash")


def ends_domain_at_once(message: str) -> bool:
    """Whether a control/testing message makes the guest end its domain right after the ack.

    The toolstack may then destroy the domain (and its xenstore home) before anyone reads the
    ack, so its disappearance is the answer (PROTOCOL.md section 3: ack, then act).
    """
    try:
        body = json.loads(message)
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and body.get("when") == "now"
        and body.get("action") in ENDING_ACTIONS
        and not body.get("action_delay_ms")
    )
