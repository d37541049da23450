"""Fixtures for the client tests: a kernel image for lab runs, a recording host for unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.client.client_fakes import RecordingHost

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recording_host() -> RecordingHost:
    return RecordingHost()


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
