"""Which kernel image install and smoke use: a file, a local build, or a verified release."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .download import (
    ASSET_NAME,
    DEFAULT_REPO,
    DEFAULT_SITE,
    SUMS_NAME,
    asset_url,
    download_verified,
    http_session,
    parse_sha256sums,
    store,
)
from .errors import UsageError
from .output import ProgressBar, progress_stream

LOCAL_BUILD = Path("build") / ASSET_NAME
GZIP_MAGIC = b"\x1f\x8b"
ELF_MAGIC = b"\x7fELF"
VERSION = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?"
)


@dataclass(frozen=True)
class KernelChoice:
    """The image to upload, and where it came from (said to the user and in --json)."""

    path: Path
    source: str


def check_version(text: str) -> str:
    """MAJOR.MINOR.PATCH with an optional -PRERELEASE (tags carry no 'v')."""
    if VERSION.fullmatch(text):
        return text
    hint = " (tags carry no 'v' prefix)" if text[:1] in ("v", "V") else ""
    raise UsageError(
        f"invalid version {text!r}: expected MAJOR.MINOR.PATCH such as 0.1.5, "
        f"optionally with a pre-release suffix such as 0.2.0-rc1{hint}"
    )


def check_kernel(path: Path) -> Path:
    """A readable gzip or ELF file, or a one-line error."""
    if not path.is_file():
        raise UsageError(
            f"kernel file {path} does not exist (build it with `invoke build`, or leave out "
            "--kernel outside a checkout to use the released kernel)"
        )
    with path.open("rb") as f:
        head = f.read(4)
    if not (head.startswith(GZIP_MAGIC) or head == ELF_MAGIC):
        raise UsageError(f"{path} is neither a gzipped nor an ELF kernel image")
    return path


def cache_dir() -> Path:
    """$XEN_TEST_VM_CACHE, else $XDG_CACHE_HOME/xen-test-vm, else ~/.cache/xen-test-vm."""
    if os.environ.get("XEN_TEST_VM_CACHE"):
        return Path(os.environ["XEN_TEST_VM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xen-test-vm"


def _in_checkout(directory: Path) -> bool:
    return (directory / "kernel" / "Makefile").is_file()


def released_kernel(version: str, *, quiet: bool = False) -> KernelChoice:
    """The released image of version: from the cache if its digest still matches, else fetched.

    Site and repository: $XEN_TEST_VM_RELEASE_SITE, $XEN_TEST_VM_RELEASE_REPO.
    """
    version = check_version(version)
    site = os.environ.get("XEN_TEST_VM_RELEASE_SITE") or DEFAULT_SITE
    repo = os.environ.get("XEN_TEST_VM_RELEASE_REPO") or DEFAULT_REPO
    slot = cache_dir() / "releases" / repo.replace("/", "_") / version
    url = asset_url(site, repo, version, ASSET_NAME)
    image, sums = slot / ASSET_NAME, slot / SUMS_NAME
    if image.is_file() and sums.is_file():
        expected = parse_sha256sums(sums.read_text(encoding="utf-8")).get(ASSET_NAME)
        if expected == hashlib.sha256(image.read_bytes()).hexdigest():
            return _said(
                KernelChoice(image, f"release {version} from {url} (cached in {slot})"), quiet
            )
    http = http_session()
    bar = ProgressBar(
        f"downloading {ASSET_NAME} {version}", 0, None if quiet else progress_stream()
    )
    saved = download_verified(
        version=version, repo=repo, dest_dir=slot, site=site, session=http, progress=bar
    )
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    store(slot, SUMS_NAME, f"{digest}  {ASSET_NAME}\n".encode())
    return _said(
        KernelChoice(saved, f"release {version} from {url} (sha256 verified, cached in {slot})"),
        quiet,
    )


def _said(choice: KernelChoice, quiet: bool) -> KernelChoice:
    if not quiet:
        print(f"kernel: {choice.source}", file=sys.stderr)
    return choice


def choose_kernel(
    kernel: Path | None, release: str | None, *, quiet: bool = False, cwd: Path | None = None
) -> KernelChoice:
    """--kernel FILE; --release VERSION; else build/test-vm.xen.gz here; else, outside a
    checkout, the release of this client's version (a checkout without a build is told to build).
    """
    here = cwd or Path.cwd()
    if kernel is not None:
        return KernelChoice(check_kernel(kernel), f"file {kernel}")
    if release is not None:
        return released_kernel(release, quiet=quiet)
    local = here / LOCAL_BUILD
    if local.is_file() or _in_checkout(here):
        if not local.is_file():
            raise UsageError(
                f"{LOCAL_BUILD} does not exist (build it with `invoke build`, or pass "
                f"--release {__version__} for the released kernel)"
            )
        return KernelChoice(check_kernel(local), f"local build {LOCAL_BUILD}")
    return released_kernel(__version__, quiet=quiet)
