"""Fixtures for the client tests: a kernel image for lab runs, a recording host for unit tests,
a FAKE XAPI host for the console script."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.client.client_fakes import RecordingHost

if TYPE_CHECKING:
    from tests.client.fake_xapi_host import FakeHost

ROOT = Path(__file__).resolve().parents[2]
# The installed console script (pip's entry point), as a user runs it.
CONSOLE_SCRIPT = Path(sys.executable).parent / "xen-test-vm"


def xen_test_vm(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console script with args, as a user would; its output as text."""
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def one_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The one `xen-test-vm: error: ...` line a failed run exits with code after, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xen-test-vm: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def recording_host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
def xapi_host(tmp_path: Path) -> Iterator[FakeHost]:
    """A FAKE XAPI host the console script reaches through a stand-in ssh (fake_xapi_host.py)."""
    from tests.client.fake_xapi_host import fake_xapi_host

    with fake_xapi_host(tmp_path) as host:
        yield host


@pytest.fixture(scope="session")
def client_kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test kernel, built once (`make -C kernel O=<dir> image`); skip if it cannot be built."""
    out = tmp_path_factory.mktemp("client-kernel")
    proc = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "kernel"), f"O={out}", "image"],
        capture_output=True,
        text=True,
    )
    image = out / "test-vm.xen.gz"
    if proc.returncode != 0 or not image.exists():
        pytest.skip(f"the test kernel cannot be built: {proc.stderr.strip()[-300:]}")
    return image
