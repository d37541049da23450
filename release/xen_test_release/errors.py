"""The release tooling's errors: the house's error type, reporter and exit codes
(xen_test_vm.errors), plus the one formatter of GitHub API errors and secret redaction."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import requests
from github import GithubException
from xen_test_vm.download import describe_network_failure
from xen_test_vm.errors import ClientError, ExitCode, report_error

_secrets: set[str] = set()


class ReleaseError(ClientError):
    """A failure explained in one line; the command exits non-zero without a traceback."""


def register_secret(secret: str) -> None:
    """Remember a secret so that no error message can ever carry it."""
    if secret:
        _secrets.add(secret)


def redact(text: str) -> str:
    """Replace every registered secret in text."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def describe_github_error(error: GithubException, step: str = "", url: str = "") -> str:
    """The one summary of a GitHub API error: the step, the URL, status, message, error codes."""
    data = error.data if isinstance(error.data, dict) else {}
    message = str(data.get("message") or error.message or "request failed")
    codes = [
        str(item.get("code"))
        for item in data.get("errors", [])
        if isinstance(item, dict) and item.get("code")
    ]
    suffix = f" ({', '.join(codes)})" if codes else ""
    where = f"{step} failed" + (f" ({url})" if url else "") + ": " if step else ""
    return redact(f"{where}GitHub API returned {error.status}: {message}{suffix}")


def github_failure(step: str, url: str, error: GithubException) -> ReleaseError:
    """A ReleaseError naming the step and the URL (never a token)."""
    return ReleaseError(describe_github_error(error, step, url))


def run_cli(action: Callable[[], int], stderr: TextIO | None = None, prog: str = "release") -> int:
    """Run a command body; every expected failure is one `PROG: error: ...` line on stderr."""
    stream = stderr if stderr is not None else sys.stderr
    code: int = ExitCode.FAILED
    try:
        return action()
    except ClientError as error:
        message, code = str(error), error.exit_code
    except GithubException as error:
        message = describe_github_error(error)
    except requests.RequestException as error:
        url = error.request.url if error.request is not None and error.request.url else ""
        message, code = describe_network_failure(error, str(url)), ExitCode.NETWORK
    except OSError as error:
        message = f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    except KeyboardInterrupt:
        report_error(prog, "interrupted", stream)
        return ExitCode.INTERRUPTED
    report_error(prog, redact(message), stream)
    return code
