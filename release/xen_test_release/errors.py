"""One error type for everything a user can act on, and the one-line reporting of it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import requests
from github import GithubException

_secrets: set[str] = set()


class ReleaseError(Exception):
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


def describe_github_error(error: GithubException) -> str:
    """Summarise a GitHub API error: status, message and the validation error codes."""
    data = error.data if isinstance(error.data, dict) else {}
    message = str(data.get("message") or error.message or "request failed")
    codes = [
        str(item.get("code"))
        for item in data.get("errors", [])
        if isinstance(item, dict) and item.get("code")
    ]
    suffix = f" ({', '.join(codes)})" if codes else ""
    return f"GitHub API returned {error.status}: {message}{suffix}"


def _one_line(text: str) -> str:
    return " ".join(redact(text).split())


def run_cli(action: Callable[[], int], stderr: TextIO | None = None) -> int:
    """Run a command body; turn every expected failure into one line on stderr and exit code 1."""
    stream = stderr if stderr is not None else sys.stderr
    try:
        return action()
    except ReleaseError as error:
        message = str(error)
    except GithubException as error:
        message = describe_github_error(error)
    except requests.RequestException as error:
        message = f"network error: {error}"
    except OSError as error:
        message = f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    except KeyboardInterrupt:
        print("error: interrupted", file=stream)
        return 130
    print(f"error: {_one_line(message)}", file=stream)
    return 1
