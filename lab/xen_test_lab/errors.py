"""Errors the lab reports to people: one line that says what went wrong and what to do."""


class LabError(Exception):
    """A lab failure with a one-line, actionable message."""


class LabCommandError(LabError):
    """A command run in dom0 exited non-zero."""

    def __init__(self, command: str, returncode: int, stdout: str, stderr: str) -> None:
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output on stderr"
        super().__init__(f"dom0 command failed (exit {returncode}): {command}: {detail}")
