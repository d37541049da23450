"""The host abstraction: run argv lists, copy files, reach unix sockets on a Xen host."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from .errors import RemoteCommandError

Progress = Callable[[int, int], None]
COPY_CHUNK = 1 << 16


@dataclass(frozen=True)
class CommandResult:
    """What a remote command returned."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> CommandResult:
        """Raise RemoteCommandError unless the command succeeded."""
        if self.returncode != 0:
            raise RemoteCommandError(self.argv, self.returncode, self.stderr)
        return self


def shell_command(argv: Sequence[str]) -> str:
    """One shell word per argument: the only way a command reaches a remote shell."""
    if not argv:
        raise ValueError("empty command")
    return shlex.join(argv)


def atomic_write_command(path: str) -> list[str]:
    """A command that stores stdin at `path` atomically (temp file, then rename)."""
    script = (
        'set -e; tmp="$1.part.$$"; trap \'rm -f "$tmp"\' EXIT; '
        'cat > "$tmp"; mv -f "$tmp" "$1"; trap - EXIT'
    )
    return ["sh", "-c", script, "sh", path]


class Host(Protocol):
    """A Xen host the client can drive."""

    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 120.0,
        check: bool = True,
        idempotent: bool = False,
    ) -> CommandResult:
        """Run argv on the host (never through a local shell)."""
        ...

    def copy_in(self, local: Path, remote_path: str, progress: Progress | None = None) -> None:
        """Copy a local file to `remote_path` on the host, atomically."""
        ...

    def open_stream(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start a long-running command with stdin/stdout pipes."""
        ...

    def unix_socket(self, remote_path: str, refresh: bool = False) -> str:
        """A local path through which the host's unix socket `remote_path` is reachable."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def stream_file(src: IO[bytes], dst: IO[bytes], total: int, progress: Progress | None) -> None:
    """Copy src to dst in chunks, reporting progress."""
    done = 0
    while chunk := src.read(COPY_CHUNK):
        dst.write(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)


class LocalHost:
    """This machine is the Xen host (the client runs in dom0)."""

    name = "localhost"

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 120.0,
        check: bool = True,
        idempotent: bool = False,
    ) -> CommandResult:
        """Run argv locally without a shell."""
        proc = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)
        result = CommandResult(
            list(argv),
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )
        return result.check() if check else result

    def copy_in(self, local: Path, remote_path: str, progress: Progress | None = None) -> None:
        """Copy through the same atomic write the remote path uses."""
        with local.open("rb") as src:
            proc = subprocess.Popen(
                atomic_write_command(remote_path), stdin=subprocess.PIPE, stderr=subprocess.PIPE
            )
            assert proc.stdin is not None
            stream_file(src, proc.stdin, local.stat().st_size, progress)
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if proc.wait() != 0:
                raise RemoteCommandError(["cat"], proc.returncode, err)

    def open_stream(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start argv locally with pipes."""
        return subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    def unix_socket(self, remote_path: str, refresh: bool = False) -> str:
        """Local sockets need no forwarding."""
        return remote_path

    def close(self) -> None:
        """Nothing to release."""
