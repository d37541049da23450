"""SSH through the OpenSSH client (~/.ssh/config, agents, known_hosts), multiplexed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConnectionLost, HostKeyError, RemoteCommandError, SSHError, UsageError
from .remote import CommandResult, Progress, atomic_write_command, shell_command, stream_file

# The parts of a destination; nothing that ssh could read as an option gets through.
_USER = re.compile(r"[A-Za-z0-9._%+][A-Za-z0-9._%+-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%A-Za-z]*")
SSH_FAILED = 255
TRACE = bool(os.environ.get("XEN_TEST_VM_TRACE"))
REMOTE_SHELL_CRASHED = 128 + 11
# How long close() waits for a thread that holds the connection's lock once that thread's ssh was
# ended (a step that outlived its deadline may be reconnecting): then it closes without the lock.
CLOSE_LOCK_WAIT = 5.0

_HOST_KEY_UNKNOWN = (
    "Host key verification failed",
    "No ED25519 host key is known",
    "host key is known",
)
_HOST_KEY_CHANGED = ("REMOTE HOST IDENTIFICATION HAS CHANGED",)
_UNREACHABLE = (
    "Could not resolve hostname",
    "Connection refused",
    "Connection timed out",
    "No route to host",
    "Network is unreachable",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Operation timed out",
)
_LOST = (
    "Connection closed",
    "Connection reset",
    "Broken pipe",
    "Timeout, server",
    "client_loop: send disconnect",
    "Control socket connect",
    "mux_client_request_session",
)
_AUTH = ("Permission denied", "Too many authentication failures")


def _worth_retrying(result: CommandResult) -> bool:
    """The remote shell crashed, or ssh failed without saying why (a multiplexing hiccup)."""
    return result.returncode == REMOTE_SHELL_CRASHED or (
        result.returncode == SSH_FAILED and not result.stderr.strip()
    )


@dataclass(frozen=True)
class Destination:
    """Where to ssh to: [user@]host[:port], ssh://[user@]host[:port], [v6]:port or a bare v6."""

    host: str  # a host name, ssh_config alias or IP literal (IPv6 without brackets)
    user: str | None = None
    port: int | None = None

    def ssh_args(self) -> list[str]:
        """The ssh options that carry the user and port (the host goes after `--`)."""
        args = ["-l", self.user] if self.user else []
        return [*args, "-p", str(self.port)] if self.port else args


def parse_destination(text: str) -> Destination:
    """Read the forms users type; refuse anything ssh could misread (a one-line UsageError)."""

    def bad(why: str = "") -> UsageError:
        hint = why or "expected [user@]host[:port], ssh://[user@]host[:port] or [IPv6]:port"
        return UsageError(f"invalid host name {text!r}: {hint}")

    rest = text.removeprefix("ssh://")
    if rest != text:
        rest = rest.removesuffix("/")
    user: str | None = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not _USER.fullmatch(user):
            raise bad()
    port_text: str | None = None
    if rest.startswith("["):
        host, sep, after = rest[1:].partition("]")
        if not sep or not _IPV6.fullmatch(host):
            raise bad()
        if after:
            if not after.startswith(":"):
                raise bad()
            port_text = after[1:]
    elif rest.count(":") > 1:  # a bare IPv6 literal: no port (use [addr]:port for one)
        host = rest
        if not _IPV6.fullmatch(host):
            raise bad()
    else:
        host, sep, port_text_or_empty = rest.partition(":")
        port_text = port_text_or_empty if sep else None
        if not _HOSTNAME.fullmatch(host):
            raise bad()
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise bad(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return Destination(host, user, port)


def validate_destination(destination: str) -> str:
    """Refuse empty names, spaces, control characters, and anything that looks like an option."""
    parse_destination(destination)
    return destination


def _end_session(proc: subprocess.Popen[bytes]) -> None:
    """Kill a process started with start_new_session, and whatever it started in its session."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def classify_ssh_failure(destination: str, stderr: str) -> SSHError | None:
    """Turn ssh's own messages (exit status 255) into a one-line error; None if it is not ssh's."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    text = "\n".join(lines)
    if any(m in text for m in _HOST_KEY_CHANGED):
        return HostKeyError(
            f"the host key of {destination} has CHANGED since it was recorded in known_hosts; "
            "refusing to connect (check the host, then fix known_hosts)"
        )
    if any(m in text for m in _HOST_KEY_UNKNOWN):
        return HostKeyError(
            f"the host key of {destination} is not in known_hosts; verify it, or pass "
            "--accept-new-host-key to trust a key seen for the first time"
        )
    for marks, what in ((_UNREACHABLE, "cannot reach"), (_AUTH, "cannot log in to")):
        hit = next((ln for ln in lines if any(m in ln for m in marks)), None)
        if hit:
            return SSHError(f"{what} {destination}: {hit}")
    hit = next((ln for ln in lines if any(m in ln for m in _LOST)), None)
    if hit:
        return ConnectionLost(f"connection to {destination} lost: {hit}")
    if lines and (lines[-1].startswith("ssh:") or lines[-1].startswith("kex_")):
        return SSHError(f"ssh to {destination} failed: {lines[-1]}")
    return None


class SSHHost:
    """A Xen host reached with `ssh`, multiplexed over one ControlMaster connection."""

    def __init__(
        self,
        destination: str,
        *,
        ssh_config: Path | None = None,
        accept_new_host_key: bool = False,
        connect_timeout: int = 10,
        ssh_binary: str = "ssh",
    ) -> None:
        self.destination = parse_destination(destination)
        self.name = destination
        if ssh_config is not None and not ssh_config.is_file():
            raise UsageError(f"ssh config file {ssh_config} does not exist")
        if shutil.which(ssh_binary) is None:
            raise UsageError(f"the OpenSSH client ({ssh_binary}) is not installed")
        self._ssh = ssh_binary
        self._config = ssh_config
        self._accept_new = accept_new_host_key
        self._connect_timeout = connect_timeout
        # Short path: a unix socket path may not exceed ~104 bytes.
        self._control_dir = Path(tempfile.mkdtemp(prefix="xtvm-"))
        self._lock = threading.Lock()
        # The ssh processes run while holding the lock: close() ends them rather than wait.
        self._under_lock: set[subprocess.Popen[bytes]] = set()
        self._closed = False
        self._connected = False
        self._forwards: dict[str, str] = {}
        self._forward_count = 0

    @property
    def control_path(self) -> Path:
        """The ControlMaster socket."""
        return self._control_dir / "cm"

    def ssh_argv(self, *, multiplex: bool = True) -> list[str]:
        """The ssh command line up to (and including) the destination."""
        argv = [self._ssh]
        if self._config is not None:
            argv += ["-F", str(self._config)]
        options = {
            "BatchMode": "yes",
            "StrictHostKeyChecking": "accept-new" if self._accept_new else "yes",
            "ConnectTimeout": str(self._connect_timeout),
            "ServerAliveInterval": "5",
            "ServerAliveCountMax": "3",
            "LogLevel": "ERROR",
        }
        if multiplex:
            options |= {
                "ControlMaster": "auto",
                "ControlPath": str(self.control_path),
                # The master outlives a killed client only this long once idle.
                "ControlPersist": "60",
            }
        for key, value in options.items():
            argv += ["-o", f"{key}={value}"]
        return [*argv, *self.destination.ssh_args(), "--", self.destination.host]

    def _raise_for_ssh(self, proc_returncode: int, stderr: str) -> None:
        if proc_returncode == SSH_FAILED:
            error = classify_ssh_failure(self.name, stderr)
            if error is not None:
                raise error

    def connect(self, timeout: float | None = None) -> None:
        """Open the master connection (idempotent); raises on unreachable hosts and bad keys.

        timeout: how long the whole login may take (ConnectTimeout bounds only the TCP connect).
        """
        with self._lock:
            if self._connected and self.control_path.exists():
                return
            self._refuse_if_closed()
            limit = timeout if timeout is not None else self._connect_timeout * 3 + 30
            try:
                proc = self._run_under_lock([*self.ssh_argv(), "true"], limit)
            except subprocess.TimeoutExpired:
                raise SSHError(
                    f"cannot reach {self.name}: no SSH login within {limit:g} s"
                ) from None
            self._refuse_if_closed()
            stderr = proc.stderr.decode(errors="replace")
            self._raise_for_ssh(proc.returncode, stderr)
            if proc.returncode != 0:
                raise SSHError(f"ssh to {self.name} failed: {stderr.strip() or proc.returncode}")
            self._connected = True
            if TRACE:
                print(
                    f"[ssh] connected to {self.name}, ControlPath={self.control_path}",
                    file=sys.stderr,
                )

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise ConnectionLost(f"connection to {self.name} closed")

    def _run_under_lock(
        self, argv: list[str], timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ssh while holding the lock, where close() can end it (subprocess.run's manner)."""
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._under_lock.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_session(proc)
            proc.communicate()
            raise
        finally:
            self._under_lock.discard(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 120.0,
        check: bool = True,
        idempotent: bool = False,
    ) -> CommandResult:
        """Run argv on the host; each argument is quoted for the remote shell.

        idempotent commands are run again if the remote shell itself crashed (SIGSEGV, seen with
        busybox-static shells under load); anything else runs exactly once.
        """
        for _ in range(3 if idempotent else 1):
            started = time.monotonic()
            result = self._run_once(argv, input=input, timeout=timeout)
            if TRACE:
                print(
                    f"[{time.monotonic() - started:6.2f}s rc={result.returncode}] "
                    f"{shell_command(argv)[:160]}",
                    file=sys.stderr,
                )
            if not _worth_retrying(result):
                break
        return result.check() if check else result

    def _run_once(
        self, argv: Sequence[str], *, input: bytes | None, timeout: float | None
    ) -> CommandResult:
        self.connect()
        command = shell_command(argv)
        try:
            proc = subprocess.run(
                [*self.ssh_argv(), command],
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise SSHError(
                f"{argv[0]} on {self.name} did not finish within {timeout:.0f} s"
            ) from None
        stderr = proc.stderr.decode(errors="replace")
        self._raise_for_ssh(proc.returncode, stderr)
        return CommandResult(
            list(argv), proc.returncode, proc.stdout.decode(errors="replace"), stderr
        )

    def copy_in(self, local: Path, remote_path: str, progress: Progress | None = None) -> None:
        """Stream the file through `cat` into a temporary name, then rename it."""
        for _ in range(3):
            returncode, stderr = self._copy_once(local, remote_path, progress)
            if returncode != REMOTE_SHELL_CRASHED:
                break
        self._raise_for_ssh(returncode, stderr)
        if returncode != 0:
            raise RemoteCommandError(["cat", remote_path], returncode, stderr)

    def _copy_once(
        self, local: Path, remote_path: str, progress: Progress | None
    ) -> tuple[int, str]:
        self.connect()
        size = local.stat().st_size
        with local.open("rb") as src:
            proc = subprocess.Popen(
                [*self.ssh_argv(), shell_command(atomic_write_command(remote_path))],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            assert proc.stdin is not None and proc.stderr is not None
            try:
                stream_file(src, proc.stdin, size, progress)
            except BrokenPipeError:
                pass
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            stderr = proc.stderr.read().decode(errors="replace")
            return proc.wait(), stderr

    def open_stream(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start a command whose stdin stays open (the reaper's lifeline)."""
        self.connect()
        return subprocess.Popen(
            [*self.ssh_argv(), shell_command(argv)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Ctrl-C goes to the client only: the lifeline must outlive it until cleanup is done.
            start_new_session=True,
        )

    def unix_socket(self, remote_path: str, refresh: bool = False) -> str:
        """Forward the remote unix socket to a private local one over the master connection.

        refresh: the previous forward died with its connection; revive the master, forward anew.
        """
        if refresh:
            self._run_once(["true"], input=None, timeout=60)
        self.connect()
        with self._lock:
            if remote_path in self._forwards and not refresh:
                return self._forwards[remote_path]
            self._forward_count += 1
            local = str(self._control_dir / f"fwd{self._forward_count}")
            self._refuse_if_closed()
            proc = self._run_under_lock(
                [
                    *self.ssh_argv()[:-2],
                    "-O",
                    "forward",
                    "-L",
                    f"{local}:{remote_path}",
                    "--",
                    self.destination.host,
                ],
                60,
            )
            if proc.returncode != 0:
                raise SSHError(
                    f"cannot forward {remote_path} from {self.name}: "
                    f"{proc.stderr.decode(errors='replace').strip()}"
                )
            self._forwards[remote_path] = local
            return local

    def stop_config_master(self) -> None:
        """Stop the master connection that a plain `ssh -F CONFIG HOST` left running (the
        config's own ControlPath and ControlPersist), if there is one."""
        subprocess.run(
            [*self.ssh_argv(multiplex=False)[:-2], "-O", "exit", "--", self.destination.host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )

    def close(self) -> None:
        """Stop the master connection and remove the private directory.

        A step that outlived its deadline may still hold the lock in a background thread, mid
        reconnect: its ssh is ended, and after CLOSE_LOCK_WAIT the connection closes regardless.
        """
        self._closed = True
        for proc in list(self._under_lock):
            _end_session(proc)
        locked = self._lock.acquire(timeout=CLOSE_LOCK_WAIT)
        try:
            if self.control_path.exists():
                subprocess.run(
                    [*self.ssh_argv()[:-2], "-O", "exit", "--", self.destination.host],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
            self._connected = False
            self._forwards.clear()
            shutil.rmtree(self._control_dir, ignore_errors=True)
        finally:
            if locked:
                self._lock.release()
