"""A pip user without a checkout gets the released kernel: downloaded, verified, cached, named.

GitHub is replaced by the local fake (tests/release/fake_github.py), which serves the public
download URLs with github.com's layout and 302 redirect. The host is unreachable on purpose:
everything here happens before connecting, and the SSH failure (exit 3) proves the run got past
the kernel.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_vm import __version__
from xen_test_vm.errors import ExitCode

from tests.client.conftest import CONSOLE_SCRIPT
from tests.release.fake_github import FakeGitHub

IMAGE = gzip.compress(b"\x7fELF a released kernel", mtime=0)


def sums(data: bytes) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}  test-vm.xen.gz\n".encode()


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "--host", "no-such-host.invalid", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def user_env(tmp_path: Path, site: str, repo: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XEN_TEST_VM_")}
    return env | {
        "XEN_TEST_VM_RELEASE_SITE": site,
        "XEN_TEST_VM_RELEASE_REPO": repo,
        "XEN_TEST_VM_CACHE": str(tmp_path / "cache"),
    }


def test_install_outside_a_checkout_downloads_verifies_and_caches_the_release(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    fake.publish_directly(__version__, {"test-vm.xen.gz": IMAGE, "SHA256SUMS": sums(IMAGE)})
    env = user_env(tmp_path, fake.web_url, fake.repo)
    proc = run(env, tmp_path, "install")
    assert proc.returncode == ExitCode.SSH, proc.stderr
    first, second = proc.stderr.strip().splitlines()
    assert first.startswith(f"kernel: release {__version__} from {fake.web_url}/{fake.repo}/")
    assert "sha256 verified" in first and str(tmp_path / "cache") in first
    assert "cannot reach no-such-host.invalid" in second
    cached = next((tmp_path / "cache").rglob("test-vm.xen.gz"))
    assert cached.read_bytes() == IMAGE
    downloads = [r for r in fake.requests if r.path.endswith("/test-vm.xen.gz")]
    # Second run: from the cache, no request at all.
    again = run(env, tmp_path, "install")
    assert again.returncode == ExitCode.SSH and "(cached in" in again.stderr
    assert [r for r in fake.requests if r.path.endswith("/test-vm.xen.gz")] == downloads
    # A corrupted cache is noticed and fetched anew.
    cached.write_bytes(b"rotten")
    run(env, tmp_path, "install")
    assert cached.read_bytes() == IMAGE


def test_a_tampered_release_is_refused_and_nothing_is_cached(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    fake.publish_directly(__version__, {"test-vm.xen.gz": IMAGE + b"x", "SHA256SUMS": sums(IMAGE)})
    proc = run(user_env(tmp_path, fake.web_url, fake.repo), tmp_path, "install")
    assert proc.returncode == ExitCode.NETWORK
    assert proc.stderr.count("\n") == 1 and "checksum mismatch" in proc.stderr
    assert not (tmp_path / "cache").exists()


def test_offline_is_one_human_line_and_creates_nothing(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = user_env(tmp_path, f"http://127.0.0.1:{port}", "o/r")
    proc = run(env, tmp_path, "install", "--release", "0.1.5")
    assert proc.returncode == ExitCode.NETWORK
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in proc.stderr
    assert line.startswith("xen-test-vm: error: downloading SHA256SUMS failed: 127.0.0.1 refused")
    assert "HTTPConnectionPool" not in line and "Max retries" not in line
    assert not (tmp_path / "cache").exists()


def test_an_unknown_release_names_the_url(fake: FakeGitHub, tmp_path: Path) -> None:
    proc = run(user_env(tmp_path, fake.web_url, fake.repo), tmp_path, "smoke", "--release", "9.9.9")
    assert proc.returncode == ExitCode.NETWORK
    assert "HTTP 404 (no such release or asset?)" in proc.stderr
    assert f"{fake.repo}/releases/download/9.9.9/SHA256SUMS" in proc.stderr


def test_a_bad_release_version_is_usage(tmp_path: Path) -> None:
    proc = run(
        user_env(tmp_path, "http://127.0.0.1:9", "o/r"), tmp_path, "install", "--release", "v1"
    )
    assert proc.returncode == ExitCode.USAGE and "no 'v' prefix" in proc.stderr


def test_transient_server_errors_are_retried(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.publish_directly(__version__, {"test-vm.xen.gz": IMAGE, "SHA256SUMS": sums(IMAGE)})
    fake.fail("GET", r"/SHA256SUMS$", 503, times=2)
    fake.fail("GET", r"/_storage/", 502)
    proc = run(user_env(tmp_path, fake.web_url, fake.repo), tmp_path, "install")
    assert proc.returncode == ExitCode.SSH, proc.stderr
    assert [r.path for r in fake.requests].count(
        f"/{fake.repo}/releases/download/{__version__}/SHA256SUMS"
    ) == 3
