"""Fixtures for the release tests: a throw-away git repository and the fake GitHub.

The kernel is not needed here: a stand-in builder gzips one source file deterministically,
so these tests exercise the release logic (git checks, clean rebuild, publishing) on their own.
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from github import Github
from xen_test_release.commands import Environment
from xen_test_release.github_release import Patience, connect
from xen_test_release.toolchain import load_lock

from tests.release.fake_github import FakeGitHub

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.1.5"


def stand_in_builder(source: Path, out: Path) -> Path:
    """Deterministic stand-in for `make -C kernel image`: gzip (no name, no time) of a file."""
    data = (source / "kernel" / "kernel.c").read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    image = out / "test-vm.xen.gz"
    image.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return image


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@dataclass
class SourceRepo:
    """A small project checkout with the real toolchain.lock, tagged and built."""

    root: Path

    @property
    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD")

    @property
    def artifact(self) -> Path:
        return self.root / "build" / "test-vm.xen.gz"

    def commit(self, text: str, message: str) -> str:
        (self.root / "kernel" / "kernel.c").write_text(text)
        git(self.root, "commit", "-q", "-am", message)
        return self.head

    def tag(self, version: str = VERSION) -> str:
        git(self.root, "tag", "-a", version, "-m", f"xen-test-vm {version}")
        return self.head

    def build(self) -> bytes:
        return stand_in_builder(self.root, self.root / "build").read_bytes()


@pytest.fixture
def source_repo(tmp_path: Path) -> SourceRepo:
    root = tmp_path / "xen-test-vm"
    (root / "kernel").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "toolchain.lock", root / "toolchain.lock")
    (root / ".gitignore").write_text("/build/\n")
    (root / "kernel" / "kernel.c").write_text("/* the test kernel, version 0.1.5 */\n")
    (root / "kernel" / "VERSION").write_text(VERSION + "\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "release-test@example.invalid")
    git(root, "config", "user.name", "Release Test")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "kernel 0.1.5")
    repo = SourceRepo(root)
    repo.tag()
    repo.build()
    return repo


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def pinned_probe(names: list[str]) -> dict[str, str | None]:
    """The build host's packages as toolchain.lock pins them."""
    pins = load_lock(REPO_ROOT).debian_packages
    return {name: pins.get(name) for name in names}


def fast_client(token: str | None, api_url: str) -> Github:
    """The production client, minus PyGithub's politeness pauses (the fake is local)."""
    return connect(token, api_url, throttle=False)


@dataclass
class World:
    environment: Environment
    out: io.StringIO
    progress: io.StringIO
    sleeps: list[float]


@pytest.fixture
def world(source_repo: SourceRepo, fake_github: FakeGitHub) -> World:
    out, progress = io.StringIO(), io.StringIO()
    sleeps: list[float] = []
    environment = Environment(
        root=source_repo.root,
        env={"GITHUB_TOKEN": fake_github.token, "GITHUB_REPOSITORY": fake_github.repo},
        builder=stand_in_builder,
        probe=pinned_probe,
        client_factory=fast_client,
        out=out,
        progress=progress,
        # Waits for GitHub are recorded, not slept: the fake's lag counts reads, not seconds.
        patience=Patience(sleep=sleeps.append),
    )
    return World(environment, out, progress, sleeps)
