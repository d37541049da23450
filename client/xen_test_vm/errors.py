"""Errors the CLI reports as one line on stderr (never a traceback), and the exit codes."""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import TextIO


class ExitCode(IntEnum):
    """Every exit status of `xen-test-vm` (and of the invoke tasks that wrap it)."""

    OK = 0  # done; smoke: every scenario passed or was skipped
    FAILED = 1  # smoke: a scenario failed (the host or guest misbehaved); a toolstack refusal
    USAGE = 2  # bad input: options, names, files; nothing was changed
    SSH = 3  # the host could not be reached, logged in to, or the connection was lost
    TIMEOUT = 4  # the guest or the toolstack did not finish within --timeout
    ERRORS = 5  # smoke: no failure, but a scenario could not be run (the harness broke)
    NETWORK = 6  # a download failed (offline, HTTP error, checksum mismatch)
    INTERNAL = 70  # a bug in xen-test-vm (EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; the VMs the run created were destroyed


EXIT_CODES_HELP = """\
exit status:
  0   ok; smoke: every scenario passed or was skipped
  1   smoke: a scenario failed (the host or guest misbehaved); a toolstack refusal
  2   bad input (options, names, files); nothing was changed
  3   SSH: the host could not be reached or logged in to, or the connection was lost
  4   timeout: the guest or the toolstack did not finish within --timeout
  5   smoke: no failure, but a scenario could not run (the harness broke)
  6   a download failed (offline, HTTP error, checksum mismatch)
  70  internal error (a bug: please report it)
  130 interrupted (Ctrl-C, SIGTERM); the VMs the run created were destroyed
"""


def report_error(prog: str, message: str, stream: TextIO | None = None) -> None:
    """The house's one error line: `PROG: error: MESSAGE`, folded onto one line."""
    line = " ".join(message.split())
    print(f"{prog}: error: {line}", file=stream if stream is not None else sys.stderr)


class ClientError(Exception):
    """Base for every error the user should see as a single line."""

    exit_code = ExitCode.FAILED

    def one_line(self) -> str:
        """The message, folded onto one line."""
        return " ".join(str(self).split())


class UsageError(ClientError):
    """Bad command-line input (host name, VM name, file)."""

    exit_code = ExitCode.USAGE


class SSHError(ClientError):
    """The SSH connection failed (not the remote command)."""

    exit_code = ExitCode.SSH


class HostKeyError(SSHError):
    """The host key is unknown or changed; nothing was trusted implicitly."""


class ConnectionLost(SSHError):
    """An established connection to the host went away."""


class RemoteCommandError(ClientError):
    """A command on the host exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        last = next((ln for ln in reversed(stderr.strip().splitlines()) if ln.strip()), "")
        super().__init__(f"{argv[0]} failed (exit {returncode}): {last or 'no message'}")


class ToolstackError(ClientError):
    """The toolstack refused or failed an operation; `code` is its error name."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}" if message else code)


class XapiUnavailable(ToolstackError):
    """A XAPI host whose xapi does not answer (down, restarting): exit 1, nothing was done."""


class GuestTimeout(ClientError):
    """The guest did not react (acknowledge, publish state) before the deadline."""

    exit_code = ExitCode.TIMEOUT


class OperationTimeout(GuestTimeout):
    """A toolstack operation did not finish before --timeout (it may still be under way)."""


class DownloadError(ClientError):
    """Fetching a released kernel failed; nothing was saved under the final name."""

    exit_code = ExitCode.NETWORK


class XenstoreError(ClientError):
    """A xenstore request failed."""


class XenstoreLost(XenstoreError):
    """The connection to xenstored died; the next request reconnects."""
