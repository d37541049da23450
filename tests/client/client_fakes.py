"""Test doubles for the client's unit tests (SSH replaced by a recorder)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xen_test_vm.remote import CommandResult, Progress

Responder = Callable[[list[str], bytes | None], CommandResult | None]


@dataclass
class RecordingHost:
    """Stands in for SSH in unit tests: records each argv, answers from a responder."""

    name: str = "recorded"
    calls: list[list[str]] = field(default_factory=list)
    inputs: list[bytes | None] = field(default_factory=list)
    responder: Responder | None = None
    copies: list[tuple[Path, str]] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 120.0,
        check: bool = True,
        idempotent: bool = False,
    ) -> CommandResult:
        self.calls.append(list(argv))
        self.inputs.append(input)
        result = self.responder(list(argv), input) if self.responder else None
        result = result or CommandResult(list(argv), 0, "", "")
        return result.check() if check else result

    def copy_in(self, local: Path, remote_path: str, progress: Progress | None = None) -> None:
        self.copies.append((local, remote_path))

    def open_stream(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def unix_socket(self, remote_path: str, refresh: bool = False) -> str:
        return remote_path

    def close(self) -> None:
        pass
