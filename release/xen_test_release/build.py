"""Rebuilding the kernel image from a pristine checkout of a commit."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from xen_test_release.errors import ReleaseError
from xen_test_release.manifest import ASSET_NAME
from xen_test_release.source import pristine_checkout

#: Builds the kernel of the source tree (first argument) into an output directory (second
#: argument) and returns the image path. The real one runs make; tests substitute a stand-in.
Builder = Callable[[Path, Path], Path]


def make_builder(source: Path, out: Path) -> Path:
    """Build with the kernel's own Makefile, exactly as `invoke build` does."""
    result = subprocess.run(
        ["make", "-s", "-C", str(source / "kernel"), f"O={out}", "image"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ReleaseError(
            f"kernel build failed in a clean checkout: {lines[-1] if lines else 'no output'}"
        )
    return out / ASSET_NAME


def build_at_commit(root: Path, commit: str, builder: Builder) -> bytes:
    """Build the image from a pristine checkout of commit and return its bytes."""
    with pristine_checkout(root, commit) as source, tempfile.TemporaryDirectory() as out:
        image = builder(source, Path(out))
        try:
            return image.read_bytes()
        except FileNotFoundError:
            raise ReleaseError(f"the kernel build did not produce {ASSET_NAME}") from None
