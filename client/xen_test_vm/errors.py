"""Errors the CLI reports as one line on stderr (never a traceback)."""

from __future__ import annotations


class ClientError(Exception):
    """Base for every error the user should see as a single line."""

    exit_code = 1

    def one_line(self) -> str:
        """The message, folded onto one line."""
        return " ".join(str(self).split())


class UsageError(ClientError):
    """Bad command-line input (host name, VM name, file)."""

    exit_code = 2


class SSHError(ClientError):
    """The SSH connection failed (not the remote command)."""

    exit_code = 3


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


class GuestTimeout(ClientError):
    """The guest did not react (acknowledge, publish state) before the deadline."""

    exit_code = 4


class XenstoreError(ClientError):
    """A xenstore request failed."""


class XenstoreLost(XenstoreError):
    """The connection to xenstored died; the next request reconnects."""
