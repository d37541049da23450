"""Build and run the host driver of the kernel's pure logic (kernel/tests/host/driver.c)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOST_TESTS_DIR = ROOT / "kernel" / "tests" / "host"
BUILD_DIR = ROOT / "build" / "host-tests"


def build_host_tools() -> Path:
    """Build unit-tests and driver with ASan/UBSan into build/host-tests (make is incremental)."""
    result = subprocess.run(
        ["make", "-s", "-C", str(HOST_TESTS_DIR), f"O={BUILD_DIR}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return BUILD_DIR


def run_driver(build: Path, commands: Sequence[str]) -> list[dict[str, Any]]:
    """Run the driver over commands; one decoded JSON object per command."""
    result = subprocess.run(
        [str(build / "driver")],
        input="".join(c + "\n" for c in commands),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"driver failed ({result.returncode}): {result.stderr}"
    assert result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(commands)
    return [json.loads(line) for line in lines]


def as_bytes(value: str | bytes) -> bytes:
    """A table value as bytes (str values are ASCII)."""
    return value if isinstance(value, bytes) else value.encode("ascii")
