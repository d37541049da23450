"""The release's asset names, SHA256SUMS and the build manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from xen_test_vm.download import ASSET_NAME, SUMS_NAME, parse_sha256sums

__all__ = ["ASSET_NAME", "MANIFEST_NAME", "SUMS_NAME", "parse_sha256sums"]
MANIFEST_NAME = "build-manifest.json"


def sha256_hex(data: bytes) -> str:
    """The lowercase hex SHA-256 of data."""
    return hashlib.sha256(data).hexdigest()


def format_sha256sums(files: Mapping[str, bytes]) -> bytes:
    """sha256sum(1)-compatible lines for files, sorted by name."""
    return "".join(f"{sha256_hex(files[name])}  {name}\n" for name in sorted(files)).encode()


def build_manifest(
    *,
    version: str,
    commit: str,
    lock: Mapping[str, str],
    installed: Mapping[str, str],
    image: bytes,
) -> bytes:
    """The build manifest: what was built, from which commit, with which toolchain.

    It has no timestamps, so a re-run produces identical bytes and the published asset can be
    compared instead of replaced.
    """
    document = {
        "project": "xen-test-vm",
        "version": version,
        "source_revision": commit,
        "image": {"name": ASSET_NAME, "sha256": sha256_hex(image), "size": len(image)},
        "toolchain": {
            "installed_debian_packages": dict(sorted(installed.items())),
            "toolchain_lock": dict(sorted(lock.items())),
        },
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
