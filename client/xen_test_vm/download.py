"""Fetching a released kernel and checking it against the release's SHA256SUMS.

Used by `xen-test-vm install` (no checkout needed) and by the release tooling's `invoke download`
and `invoke verify`. Transient failures are retried by requests' retry adapter; an offline
machine gets one human line; nothing is created under the destination until the SHA-256 matches.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import DownloadError
from .output import ProgressBar

DEFAULT_SITE = "https://github.com"
DEFAULT_REPO = "xapi-project/xen-test-vm"
ASSET_NAME = "test-vm.xen.gz"
SUMS_NAME = "SHA256SUMS"
TIMEOUT = 60
RETRIES = 3
_CHUNK = 64 * 1024
_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *]([^\s/]+)")


def http_session(retries: int = RETRIES, backoff: float = 0.3) -> requests.Session:
    """A requests session that retries connection failures, 429 and 5xx with backoff.

    Only GET and HEAD are retried, honouring Retry-After; a persistent failure surfaces as the
    last response (status_forcelist with raise_on_status=False) or a ConnectionError.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def asset_url(site: str, repo: str, version: str, name: str) -> str:
    """The public download URL: <site>/<owner>/<repo>/releases/download/<version>/<name>."""
    return f"{site.rstrip('/')}/{repo}/releases/download/{version}/{name}"


def parse_sha256sums(text: str) -> dict[str, str]:
    """Name -> hex digest from sha256sum(1) output; anything else is an error."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SUM_LINE.fullmatch(line.strip())
        if not match:
            raise DownloadError(f"{SUMS_NAME} line {number} is malformed: {line[:80]!r}")
        sums[match.group(2)] = match.group(1)
    return sums


def describe_network_failure(error: requests.RequestException, url: str) -> str:
    """One human line for a request that never got an answer (no urllib3 internals)."""
    host = urlsplit(url).hostname or url
    text = str(error)
    if "NameResolution" in text or "Name or service not known" in text or "resolve" in text:
        why = f"cannot resolve {host} (offline, or no DNS?)"
    elif "Connection refused" in text:
        why = f"{host} refused the connection"
    elif isinstance(error, requests.Timeout) or "timed out" in text:
        why = f"{host} did not answer within {TIMEOUT} s"
    elif isinstance(error, requests.exceptions.SSLError):
        why = f"TLS with {host} failed (certificate?)"
    else:
        why = f"cannot reach {host} (offline?)"
    return f"{why}: {url}"


def _get(session: requests.Session, url: str, what: str) -> bytes:
    try:
        response = session.get(url, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise DownloadError(
            f"downloading {what} failed: {describe_network_failure(error, url)}"
        ) from None
    with response:
        if response.status_code != 200:
            hint = " (no such release or asset?)" if response.status_code == 404 else ""
            raise DownloadError(
                f"downloading {what} failed: HTTP {response.status_code}{hint}: {url}"
            )
        return response.content


def fetch_expected_digest(
    session: requests.Session, site: str, repo: str, version: str, name: str
) -> str:
    """The digest SHA256SUMS of the release lists for name."""
    url = asset_url(site, repo, version, SUMS_NAME)
    sums = parse_sha256sums(_get(session, url, SUMS_NAME).decode(errors="replace"))
    if name not in sums:
        raise DownloadError(f"{SUMS_NAME} of {repo} {version} lists no {name}")
    return sums[name]


def download_verified(
    *,
    version: str,
    repo: str,
    dest_dir: Path,
    site: str = DEFAULT_SITE,
    name: str = ASSET_NAME,
    session: requests.Session | None = None,
    progress: ProgressBar | None = None,
) -> Path:
    """Download name from the release into dest_dir; it appears there only once verified.

    The image (a few KiB) is read and checked in memory; only then is dest_dir created and the
    bytes renamed into place from a temporary file beside them, so a failure anywhere leaves
    neither the final name, a temporary file, nor a new dest_dir behind.
    """
    http = session if session is not None else http_session()
    expected = fetch_expected_digest(http, site, repo, version, name)
    url = asset_url(site, repo, version, name)
    data = _stream(http, url, name, progress)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DownloadError(
            f"checksum mismatch for {name} of {repo} {version}: {SUMS_NAME} says "
            f"{expected}, downloaded {actual}; nothing was saved"
        )
    return store(dest_dir, name, data)


def _stream(http: requests.Session, url: str, name: str, progress: ProgressBar | None) -> bytes:
    try:
        response = http.get(url, stream=True, timeout=TIMEOUT)
        with response:
            if response.status_code != 200:
                hint = " (no such release or asset?)" if response.status_code == 404 else ""
                raise DownloadError(
                    f"downloading {name} failed: HTTP {response.status_code}{hint}: {url}"
                )
            bar = progress or ProgressBar(f"downloading {name}")
            bar.total = int(response.headers.get("Content-Length") or 0)
            chunks = []
            for chunk in response.iter_content(_CHUNK):
                chunks.append(chunk)
                bar.advance(len(chunk))
            bar.finish()
            return b"".join(chunks)
    except requests.RequestException as error:
        raise DownloadError(
            f"downloading {name} failed: {describe_network_failure(error, url)}"
        ) from None


def store(dest_dir: Path, name: str, data: bytes) -> Path:
    """Write data to dest_dir/name atomically (a temporary file renamed over it)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest_dir)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        temp.chmod(0o644)
        final = dest_dir / name
        temp.replace(final)
        return final
    finally:
        temp.unlink(missing_ok=True)
