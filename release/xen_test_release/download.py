"""Fetching a published kernel image and checking it against the release's SHA256SUMS."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TextIO

import requests

from xen_test_release.errors import ReleaseError
from xen_test_release.manifest import ASSET_NAME, SUMS_NAME, parse_sha256sums
from xen_test_release.progress import ProgressBar

DEFAULT_BASE_URL = "https://github.com"
_TIMEOUT = 60
_CHUNK = 64 * 1024


def asset_url(base_url: str, repo: str, version: str, name: str) -> str:
    """The public download URL: <base>/<owner>/<repo>/releases/download/<version>/<name>."""
    return f"{base_url.rstrip('/')}/{repo}/releases/download/{version}/{name}"


def _get(session: requests.Session, url: str, what: str, *, stream: bool) -> requests.Response:
    response = session.get(url, stream=stream, timeout=_TIMEOUT)
    if response.status_code != 200:
        response.close()
        hint = " (no such release or asset?)" if response.status_code == 404 else ""
        raise ReleaseError(f"downloading {what} failed: HTTP {response.status_code}{hint}: {url}")
    return response


def fetch_expected_digest(
    session: requests.Session, base_url: str, repo: str, version: str, name: str
) -> str:
    """The digest SHA256SUMS of the release lists for name."""
    url = asset_url(base_url, repo, version, SUMS_NAME)
    sums = parse_sha256sums(_get(session, url, SUMS_NAME, stream=False).text)
    if name not in sums:
        raise ReleaseError(f"{SUMS_NAME} of {repo} {version} lists no {name}")
    return sums[name]


def download_verified(
    *,
    version: str,
    repo: str,
    dest_dir: Path,
    base_url: str = DEFAULT_BASE_URL,
    name: str = ASSET_NAME,
    session: requests.Session | None = None,
    progress: TextIO | None = None,
) -> Path:
    """Download name from the release into dest_dir; it appears there only once verified.

    The bytes go to a temporary file in dest_dir (same filesystem) and are renamed over the
    final name after the SHA-256 matches, so a mismatch or an interrupted transfer never
    leaves a file under the final name.
    """
    http = session if session is not None else requests.Session()
    dest_dir.mkdir(parents=True, exist_ok=True)
    expected = fetch_expected_digest(http, base_url, repo, version, name)
    url = asset_url(base_url, repo, version, name)
    response = _get(http, url, name, stream=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest_dir)
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        total = int(response.headers.get("Content-Length") or 0)
        bar = ProgressBar(f"downloading {name}", total, progress)
        with os.fdopen(fd, "wb") as out, response:
            for chunk in response.iter_content(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.advance(len(chunk))
        bar.finish()
        actual = digest.hexdigest()
        if actual != expected:
            raise ReleaseError(
                f"checksum mismatch for {name} of {repo} {version}: {SUMS_NAME} says "
                f"{expected}, downloaded {actual}; nothing was saved"
            )
        temp.chmod(0o644)
        final = dest_dir / name
        temp.replace(final)
        return final
    finally:
        temp.unlink(missing_ok=True)
