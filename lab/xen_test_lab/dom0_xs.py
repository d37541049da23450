"""Scripted xenstore access from dom0 in one process: the xtv-xs tool (kernel/tests/dom0/).

Under QEMU TCG every process dom0 starts (xenstore-read, xl) costs a few hundred milliseconds,
far more than the guest needs to answer. xtv-xs runs a whole script of reads, writes, permission
changes and watch-based waits over xenstored's socket in one process and one SSH round trip.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabError
from .lab import LabHost

REPO_ROOT = Path(os.environ.get("XEN_TEST_VM_ROOT", Path(__file__).resolve().parents[2]))
TOOL_SOURCE_DIR = REPO_ROOT / "kernel" / "tests" / "dom0"
REMOTE_TOOL = "/root/xen-test-vm-tests/xtv-xs"
MISSING = None  # what a read of a missing key returns


def build_tool(out_dir: Path) -> Path:
    """Build the static xtv-xs binary into out_dir."""
    result = subprocess.run(
        ["make", "-s", "-C", str(TOOL_SOURCE_DIR), f"O={out_dir}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise LabError(f"building xtv-xs failed: {result.stderr.strip()}")
    return out_dir / "xtv-xs"


def install_tool(host: LabHost) -> str:
    """Build xtv-xs and copy it into dom0; returns its path there."""
    with tempfile.TemporaryDirectory(prefix="xtv-xs-") as tmp:
        tool = build_tool(Path(tmp))
        host.run(f"mkdir -p {shlex.quote(str(Path(REMOTE_TOOL).parent))}")
        host.copy_in(tool, REMOTE_TOOL)
        host.run(f"chmod +x {REMOTE_TOOL}")
    return REMOTE_TOOL


def hex_value(value: str | bytes | None) -> str:
    """A value as xtv-xs takes it: hex, or "-" for a missing key."""
    if value is None:
        return "-"
    return (value if isinstance(value, bytes) else value.encode("latin-1")).hex()


@dataclass
class Dom0Script:
    """A batch of xtv-xs commands; each command's one-line answer is filed under its label."""

    commands: list[str] = field(default_factory=list)
    labels: list[object] = field(default_factory=list)

    def add(self, label: object, command: str) -> None:
        self.commands.append(command)
        self.labels.append(label)

    def read(self, label: object, path: str) -> None:
        self.add(label, f"read {path}")

    def write(self, label: object, path: str, value: str | bytes) -> None:
        self.add(label, f"write {path} {hex_value(value)}")

    def chmod(self, label: object, path: str, *perms: str) -> None:
        self.add(label, f"chmod {path} {' '.join(perms)}")

    def wait(self, label: object, path: str, value: str | bytes | None, timeout_ms: int) -> None:
        self.add(label, f"wait {path} {hex_value(value)} {timeout_ms}")

    def send(self, label: object, path: str, value: str | bytes, timeout_ms: int) -> None:
        """Write value, then wait (on a watch) until the key is empty again: an acknowledgement."""
        self.add(label, f"send {path} {hex_value(value)} {timeout_ms}")

    def lines(self, label: object, log: str, line: str, count: int, timeout_ms: int) -> None:
        self.add(label, f"lines {log} {hex_value(line)} {count} {timeout_ms}")

    def run(self, host: LabHost, timeout: float = 600.0) -> dict[object, str]:
        """Run the batch in dom0; answers by label (a label used twice keeps the last answer)."""
        result = host.run(
            REMOTE_TOOL, input="".join(c + "\n" for c in self.commands), timeout=timeout
        )
        answers = result.stdout.splitlines()
        if len(answers) != len(self.commands):
            raise LabError(
                f"xtv-xs answered {len(answers)} of {len(self.commands)} commands: {result.stderr}"
            )
        return dict(zip(self.labels, answers, strict=True))


def decode_read(answer: str) -> str | None:
    """A `read` answer as a string (latin-1, byte for byte), or None if the key is missing."""
    kind, _, rest = answer.partition(" ")
    if kind == "value":
        return bytes.fromhex(rest).decode("latin-1")
    if answer == "error ENOENT":
        return MISSING
    raise LabError(f"xenstore read failed: {answer}")


def wait_failure(answer: str) -> str:
    """Why a `wait` answer is not "ok ...": the value found instead, for assertion messages."""
    if answer.startswith("ok"):
        return ""
    kind, _, rest = answer.partition(" ")
    if kind == "timeout":
        return "key missing" if rest == "-" else f"found {bytes.fromhex(rest).decode('latin-1')!r}"
    return answer


def domids(host: LabHost, names: list[str]) -> dict[str, int]:
    """The domids of named domains, in one round trip."""
    script = Dom0Script()
    for name in names:
        script.add(name, f"domid {name}")
    answers = script.run(host)
    out: dict[str, int] = {}
    for name in names:
        kind, _, value = answers[name].partition(" ")
        if kind != "domid":
            raise LabError(f"no domain called {name}")
        out[name] = int(value)
    return out
