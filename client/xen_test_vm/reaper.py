"""A dead man's switch on the host: VMs a run created are destroyed when its SSH session ends."""

from __future__ import annotations

import contextlib
import select
import subprocess
import time
import uuid
from collections.abc import Sequence

from .errors import SSHError
from .remote import Host, atomic_write_command, shell_command

# Runs on the host. It ignores hangups, waits for EOF on stdin (the client closed it, exited, was
# killed, or the connection dropped), then runs every cleanup script still registered.
REAPER_SCRIPT = r"""
trap '' HUP PIPE INT TERM
dir=$1
mkdir -p "$dir/cleanup" || exit 1
echo ready
cat >/dev/null
exec </dev/null >/dev/null 2>&1
for f in "$dir"/cleanup/*; do
  [ -f "$f" ] && sh "$f"
done
rm -rf "$dir"
"""
START_TIMEOUT = 60.0


class Reaper:
    """Registers cleanup scripts under a per-run directory on the host."""

    def __init__(self, host: Host, base_dir: str = "/tmp") -> None:
        self.host = host
        self.run_id = uuid.uuid4().hex[:8]
        self.dir = f"{base_dir.rstrip('/')}/xen-test-vm.{self.run_id}"
        self._proc: subprocess.Popen[bytes] | None = host.open_stream(
            ["sh", "-c", REAPER_SCRIPT, "xen-test-vm-reaper", self.dir]
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        ready, _, _ = select.select(
            [self._proc.stdout], [], [], max(0.0, deadline - time.monotonic())
        )
        line = self._proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self._proc.kill()
            raise SSHError(f"could not start the cleanup guard on {self.host.name}")

    def script_path(self, key: str) -> str:
        """Where the cleanup script for key lives."""
        return f"{self.dir}/cleanup/{key}"

    def register(self, key: str, commands: Sequence[Sequence[str]]) -> None:
        """Run these commands (each may fail) if the client goes away before unregister(key)."""
        script = "".join(f"{shell_command(c)} || true\n" for c in commands)
        self.host.run(
            atomic_write_command(self.script_path(key)), input=script.encode(), idempotent=True
        )

    def unregister(self, key: str) -> None:
        """The client cleaned up itself."""
        self.host.run(["rm", "-f", self.script_path(key)], check=False, idempotent=True)

    def close(self, timeout: float = 120.0) -> None:
        """Close the lifeline and wait for whatever cleanup is still registered."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
