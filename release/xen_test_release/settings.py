"""Where the repository name and the GitHub token come from."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from xen_test_release.errors import ReleaseError, register_secret
from xen_test_release.source import git

#: Used by download and verify when nothing else names a repository.
DEFAULT_REPO = "xapi-project/xen-test-vm"

_REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+")
_GITHUB_REMOTE = re.compile(r"(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)(.+)")


def validate_repo(text: str) -> str:
    """Return text if it looks like owner/name."""
    if not _REPO.fullmatch(text) or text.endswith((".git", "/.", "/..")):
        raise ReleaseError(f"invalid repository {text!r}: expected owner/name")
    return text


def _origin_repo(root: Path) -> str | None:
    try:
        url = git(root, "remote", "get-url", "origin")
    except ReleaseError:
        return None
    match = _GITHUB_REMOTE.fullmatch(url)
    if not match:
        return None
    name = match.group(1).removesuffix("/").removesuffix(".git")
    return name if _REPO.fullmatch(name) else None


def resolve_repo(
    explicit: str, root: Path | None, env: Mapping[str, str], fallback: str | None
) -> str:
    """--repo, else $GITHUB_REPOSITORY (set in GitHub Actions), else origin, else fallback."""
    if explicit:
        return validate_repo(explicit)
    if env.get("GITHUB_REPOSITORY"):
        return validate_repo(env["GITHUB_REPOSITORY"])
    origin = _origin_repo(root) if root is not None else None
    if origin:
        return origin
    if fallback:
        return fallback
    raise ReleaseError(
        "no repository given: pass --repo owner/name (or set GITHUB_REPOSITORY, "
        "or add a GitHub remote named origin)"
    )


def read_token(token_file: str, env: Mapping[str, str]) -> str | None:
    """The token from --token-file if given, else $GITHUB_TOKEN; registered for redaction."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ReleaseError(
                f"cannot read token file {token_file}: {error.strerror or error}"
            ) from None
        if not token:
            raise ReleaseError(f"token file {token_file} is empty")
    else:
        token = env.get("GITHUB_TOKEN", "").strip()
    if not token:
        return None
    if any(character.isspace() for character in token):
        raise ReleaseError("the GitHub token contains whitespace; check the token file")
    register_secret(token)
    return token


def env_from_os() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
