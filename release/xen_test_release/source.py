"""Git facts a release depends on: a clean tree, the tag's commit, a pristine checkout."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xen_test_release.errors import ReleaseError


def git(root: Path, *args: str) -> str:
    """Run git in root and return its stripped stdout; failures become ReleaseError."""
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ReleaseError("git not found") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise ReleaseError(f"git {args[0]} failed: {detail[-1] if detail else 'no message'}")
    return result.stdout.strip()


def repo_root(start: Path) -> Path:
    """The top of the git work tree containing start."""
    return Path(git(start, "rev-parse", "--show-toplevel"))


def require_clean_tree(root: Path) -> None:
    """Raise unless tracked and untracked (not ignored) files match HEAD exactly."""
    status = git(root, "status", "--porcelain", "--untracked-files=normal")
    if status:
        changed = [line[3:] for line in status.splitlines()]
        sample = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
        raise ReleaseError(
            f"the working tree is not clean ({len(changed)} changed or untracked: {sample}); "
            "commit or remove the changes before releasing"
        )


def head_commit(root: Path) -> str:
    """The full commit id of HEAD."""
    return git(root, "rev-parse", "--verify", "HEAD^{commit}")


def tag_commit(root: Path, tag: str) -> str | None:
    """The commit a local tag names, or None if the tag does not exist."""
    result = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def require_tag_at_head(root: Path, tag: str) -> str:
    """Return HEAD's commit if tag names it; a missing or misplaced tag is an error.

    The tag is never created here: a release tag is the maintainer's (often signed) statement
    of what is being released, so it is made and pushed deliberately before releasing.
    """
    tagged = tag_commit(root, tag)
    if tagged is None:
        raise ReleaseError(
            f"tag {tag} does not exist; tag the commit to release and push the tag first: "
            f'git tag -a {tag} -m "xen-test-vm {tag}" && git push origin {tag}'
        )
    head = head_commit(root)
    if tagged != head:
        raise ReleaseError(
            f"tag {tag} names commit {tagged[:12]} but HEAD is {head[:12]}; "
            f"check out the tag (git checkout {tag}) and build again"
        )
    return head


def require_local_tag(root: Path, tag: str) -> str:
    """The commit a local tag names; raise with a fetch hint if the tag is unknown."""
    tagged = tag_commit(root, tag)
    if tagged is None:
        raise ReleaseError(f"tag {tag} is not in this repository; fetch it: git fetch --tags")
    return tagged


@contextmanager
def pristine_checkout(root: Path, commit: str) -> Iterator[Path]:
    """Yield a fresh clone of root checked out at commit, removed afterwards.

    A clone rather than the work tree guarantees nothing uncommitted or ignored reaches the
    build; it keeps git metadata so a build can still describe its source revision.
    """
    with tempfile.TemporaryDirectory(prefix="xen-test-vm-release-") as scratch:
        checkout = Path(scratch) / "src"
        git(root, "clone", "--quiet", "--shared", "--no-checkout", str(root), str(checkout))
        git(checkout, "checkout", "--quiet", "--detach", commit)
        yield checkout
