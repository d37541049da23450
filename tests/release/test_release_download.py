"""Downloading and verifying published images, and `invoke verify`'s rebuild comparison.

The download site is the local fake of GitHub (tests/release/fake_github.py) because GitHub
cannot be reached from here; it serves /<owner>/<repo>/releases/download/<version>/<name> with
the same path layout and the same 302 redirect to storage as github.com.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from xen_test_release.commands import download_command, verify_command
from xen_test_release.errors import run_cli
from xen_test_release.manifest import format_sha256sums
from xen_test_vm.errors import ExitCode

from tests.release.conftest import REPO_ROOT, VERSION, SourceRepo, World
from tests.release.fake_github import FakeGitHub

IMAGE = gzip.compress(b"\x7fELF a small test kernel", mtime=0)


def publish(fake: FakeGitHub, image: bytes = IMAGE, sums_for: bytes | None = None) -> None:
    sums = format_sha256sums({"test-vm.xen.gz": sums_for if sums_for is not None else image})
    fake.publish_directly(VERSION, {"test-vm.xen.gz": image, "SHA256SUMS": sums})


def download(world: World, fake: FakeGitHub, dest: Path, version: str = VERSION) -> tuple[int, str]:
    err = io.StringIO()
    code = run_cli(
        lambda: download_command(
            version=version,
            repo=fake.repo,
            dest=dest,
            base_url=fake.web_url,
            world=world.environment,
        ),
        stderr=err,
        prog="download",
    )
    return code, err.getvalue()


def test_download_saves_the_verified_image(
    world: World, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    publish(fake_github)
    code, err = download(world, fake_github, tmp_path / "dest")
    assert (code, err) == (0, "")
    assert os.listdir(tmp_path / "dest") == ["test-vm.xen.gz"]
    assert (tmp_path / "dest" / "test-vm.xen.gz").read_bytes() == IMAGE
    assert "verified against SHA256SUMS" in world.out.getvalue()
    assert "downloading test-vm.xen.gz [" in world.progress.getvalue()
    storage = [r for r in fake_github.requests if r.path.startswith("/_storage/")]
    assert storage, "the 302 redirect to storage was not followed"


def test_checksum_mismatch_saves_nothing(
    world: World, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    publish(fake_github, image=IMAGE + b"tampered", sums_for=IMAGE)
    dest = tmp_path / "dest"
    code, err = download(world, fake_github, dest)
    assert code == ExitCode.NETWORK and err.count("\n") == 1
    assert err.startswith("download: error: checksum mismatch for test-vm.xen.gz")
    assert hashlib.sha256(IMAGE).hexdigest() in err
    assert not dest.exists(), "neither the directory, the final name nor a temporary file"


def test_mismatch_leaves_an_earlier_good_download_alone(
    world: World, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    publish(fake_github, image=b"evil", sums_for=IMAGE)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "test-vm.xen.gz").write_bytes(IMAGE)
    assert download(world, fake_github, dest)[0] == ExitCode.NETWORK
    assert os.listdir(dest) == ["test-vm.xen.gz"]
    assert (dest / "test-vm.xen.gz").read_bytes() == IMAGE


def test_missing_release_is_a_one_line_error(
    world: World, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    code, err = download(world, fake_github, tmp_path / "dest", version="9.9.9")
    assert code == ExitCode.NETWORK and "HTTP 404" in err and err.count("\n") == 1
    assert not (tmp_path / "dest").exists()


def test_drafts_cannot_be_downloaded(world: World, fake_github: FakeGitHub, tmp_path: Path) -> None:
    publish(fake_github)
    fake_github.releases[0].draft = True
    code, err = download(world, fake_github, tmp_path)
    assert code == ExitCode.NETWORK and "HTTP 404" in err


def test_sums_without_the_image_is_refused(
    world: World, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    sums = format_sha256sums({"other-file": b"x"})
    fake_github.publish_directly(VERSION, {"test-vm.xen.gz": IMAGE, "SHA256SUMS": sums})
    code, err = download(world, fake_github, tmp_path / "dest")
    assert code == ExitCode.NETWORK and "lists no test-vm.xen.gz" in err
    assert not (tmp_path / "dest").exists()


def invoke_download(*options: str) -> subprocess.CompletedProcess[str]:
    """`invoke download OPTIONS` run in the checkout, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("invoke")), "download", *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_invoke_download_task(fake_github: FakeGitHub, tmp_path: Path) -> None:
    """The task wiring in tasks.py: flags, exit status, nothing but the file saved."""
    publish(fake_github)
    result = invoke_download(
        f"--version={VERSION}",
        f"--repo={fake_github.repo}",
        f"--dest={tmp_path}",
        f"--base-url={fake_github.web_url}",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "test-vm.xen.gz").read_bytes() == IMAGE
    bad = invoke_download("--version=0.1", f"--dest={tmp_path}")
    assert bad.returncode == ExitCode.USAGE
    assert bad.stderr.startswith("download: error: invalid version '0.1'")
    assert bad.stderr.count("\n") == 1
    missing = invoke_download()
    assert missing.returncode == ExitCode.USAGE
    assert missing.stderr == "download: error: --version is required, e.g. --version 0.1.5\n"


def verify(world: World, fake: FakeGitHub) -> tuple[int, str]:
    err = io.StringIO()
    code = run_cli(
        lambda: verify_command(
            version=VERSION, repo=fake.repo, base_url=fake.web_url, world=world.environment
        ),
        stderr=err,
    )
    return code, err.getvalue()


def test_verify_reproduces_the_published_image(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    publish(fake_github, image=source_repo.artifact.read_bytes())
    code, err = verify(world, fake_github)
    assert (code, err) == (0, "")
    assert "reproduced" in world.out.getvalue()


def test_verify_reports_a_rebuild_that_differs(
    world: World, fake_github: FakeGitHub, source_repo: SourceRepo
) -> None:
    published = gzip.compress(b"built by something else", mtime=0)
    publish(fake_github, image=published)
    code, err = verify(world, fake_github)
    assert code == 1 and err.count("\n") == 1
    assert hashlib.sha256(published).hexdigest() in err
    assert hashlib.sha256(source_repo.artifact.read_bytes()).hexdigest() in err
    assert "toolchain matches toolchain.lock" in err


@pytest.mark.parametrize("version", ["1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3 "])
def test_bad_versions_are_refused(
    world: World, fake_github: FakeGitHub, tmp_path: Path, version: str
) -> None:
    code, err = download(world, fake_github, tmp_path, version=version)
    assert code == ExitCode.USAGE and "invalid version" in err
    assert fake_github.requests == []


def test_invoke_download_offline_is_one_line_and_creates_no_dest(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "new" / "dest"
    result = invoke_download(
        f"--version={VERSION}",
        "--repo=o/r",
        f"--dest={dest}",
        f"--base-url=http://127.0.0.1:{port}",
    )
    assert result.returncode == ExitCode.NETWORK
    assert result.stderr.startswith("download: error: downloading SHA256SUMS failed: 127.0.0.1 ")
    assert result.stderr.count("\n") == 1 and "urllib3" not in result.stderr
    assert not (tmp_path / "new").exists()
