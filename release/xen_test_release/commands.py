"""The release, download and verify commands behind the invoke tasks."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from github import Github
from xen_test_vm.download import download_verified
from xen_test_vm.output import ProgressBar

from xen_test_release.build import Builder, build_at_commit, make_builder
from xen_test_release.errors import ReleaseError
from xen_test_release.github_release import (
    DEFAULT_API_URL,
    AssetSpec,
    Patience,
    Publisher,
    ReleaseRequest,
    connect,
)
from xen_test_release.manifest import (
    ASSET_NAME,
    MANIFEST_NAME,
    SUMS_NAME,
    build_manifest,
    format_sha256sums,
    sha256_hex,
)
from xen_test_release.progress import progress_stream
from xen_test_release.settings import DEFAULT_REPO, read_token, resolve_repo
from xen_test_release.source import (
    repo_root,
    require_clean_tree,
    require_local_tag,
    require_tag_at_head,
)
from xen_test_release.toolchain import (
    PackageProbe,
    load_lock,
    probe_debian_packages,
    require_pinned_toolchain,
    toolchain_drift,
)
from xen_test_release.version import is_prerelease, validate_version

ClientFactory = Callable[[str | None, str], Github]


@dataclass
class Environment:
    """Everything the commands take from the outside world, replaceable in tests."""

    root: Path
    env: Mapping[str, str]
    builder: Builder = make_builder
    probe: PackageProbe = probe_debian_packages
    client_factory: ClientFactory = connect
    out: TextIO = field(default_factory=lambda: sys.stdout)
    progress: TextIO | None = field(default_factory=progress_stream)
    patience: Patience = field(default_factory=Patience)

    def say(self, line: str) -> None:
        """One line of human output."""
        print(line, file=self.out, flush=True)


@dataclass(frozen=True)
class ReleaseOptions:
    """The release command's options."""

    version: str
    repo: str = ""
    draft: bool = False
    dry_run: bool = False
    api_url: str = DEFAULT_API_URL
    token_file: str = ""
    artifact: Path | None = None  # default: <root>/build/test-vm.xen.gz


def web_url_for(api_url: str) -> str:
    """github.com for the public API, https://HOST for GitHub Enterprise's https://HOST/api/v3."""
    api = api_url.rstrip("/")
    if api == DEFAULT_API_URL:
        return "https://github.com"
    return api.removesuffix("/api/v3")


def release_notes(version: str, repo: str, commit: str, image: bytes, web_url: str) -> str:
    """The release body: provenance and how to fetch and check the image."""
    base = f"{web_url}/{repo}/releases/download/{version}"
    return (
        f"xen-test-vm {version}, built from {commit} with the toolchain pinned in "
        "toolchain.lock (details in build-manifest.json).\n\n"
        f"- `{ASSET_NAME}` sha256 `{sha256_hex(image)}`\n\n"
        "```sh\n"
        f"curl -fLO {base}/{ASSET_NAME}\n"
        f"curl -fLO {base}/{SUMS_NAME}\n"
        f"sha256sum --check --ignore-missing {SUMS_NAME}\n"
        "```\n"
    )


def require_kernel_version(root: Path, version: str) -> None:
    """The kernel reports kernel/VERSION at run time; it must be the version being released."""
    version_file = root / "kernel" / "VERSION"
    if not version_file.exists():
        return
    embedded = version_file.read_text(encoding="utf-8").strip()
    if embedded != version:
        raise ReleaseError(
            f"kernel/VERSION says {embedded} but the release is {version}: set kernel/VERSION to "
            f"{version}, commit, and move the tag to that commit"
        )


def release_command(options: ReleaseOptions, world: Environment) -> int:
    """Check, rebuild-compare and publish build/test-vm.xen.gz as release <version>."""
    version = validate_version(options.version)
    root = repo_root(world.root)
    repo = resolve_repo(options.repo, root, world.env, fallback=None)
    token = read_token(options.token_file, world.env)
    if token is None and not options.dry_run:
        raise ReleaseError("no GitHub token: set GITHUB_TOKEN or pass --token-file PATH")

    lock = load_lock(root)
    installed = require_pinned_toolchain(lock, world.probe)
    require_clean_tree(root)
    commit = require_tag_at_head(root, version)
    require_kernel_version(root, version)

    artifact = options.artifact or root / "build" / ASSET_NAME
    try:
        image = artifact.read_bytes()
    except FileNotFoundError:
        raise ReleaseError(
            f"{artifact} does not exist; build it first: invoke build release --version {version}"
        ) from None
    rebuilt = build_at_commit(root, commit, world.builder)
    if rebuilt != image:
        raise ReleaseError(
            f"{artifact} (sha256 {sha256_hex(image)[:16]}…) is not what a clean checkout of "
            f"tag {version} builds (sha256 {sha256_hex(rebuilt)[:16]}…); it is stale or was "
            f"built from other sources: run invoke build release --version {version}"
        )
    world.say(f"{ASSET_NAME}: reproduced from a clean checkout of {version} ({commit[:12]})")

    manifest = build_manifest(
        version=version, commit=commit, lock=lock.entries, installed=installed, image=image
    )
    files = {ASSET_NAME: image, MANIFEST_NAME: manifest}
    assets = [
        AssetSpec(ASSET_NAME, image, "application/gzip"),
        AssetSpec(MANIFEST_NAME, manifest, "application/json"),
        AssetSpec(SUMS_NAME, format_sha256sums(files), "text/plain"),
    ]
    if token is None:
        for spec in assets:
            world.say(f"would publish {spec.name} sha256 {spec.sha256}")
        world.say("dry run without a GitHub token: the release on GitHub was not inspected")
        return 0

    request = ReleaseRequest(
        repo=repo,
        tag=version,
        commit=commit,
        title=f"xen-test-vm {version}",
        body=release_notes(version, repo, commit, image, web_url_for(options.api_url)),
        prerelease=is_prerelease(version),
        assets=assets,
        stop_at_draft=options.draft,
        dry_run=options.dry_run,
    )
    gh = world.client_factory(token, options.api_url)
    Publisher(gh, request, world.say, world.progress, world.patience).run()
    return 0


def fetch_verified(world: Environment, version: str, repo: str, dest_dir: Path, site: str) -> Path:
    """The client's verified download of the image (xen_test_vm.download), its progress bar on
    world.progress: dest_dir/test-vm.xen.gz appears only once it matches SHA256SUMS."""
    bar = ProgressBar(f"downloading {ASSET_NAME}", 0, world.progress)
    return download_verified(version=version, repo=repo, dest_dir=dest_dir, site=site, progress=bar)


def download_command(
    *, version: str, repo: str, dest: Path, base_url: str, world: Environment
) -> int:
    """Download and verify the published image; print where it was saved."""
    version = validate_version(version)
    name = resolve_repo(repo, _optional_root(world.root), world.env, fallback=DEFAULT_REPO)
    saved = fetch_verified(world, version, name, dest, base_url)
    world.say(f"{saved} (verified against {SUMS_NAME} of {name} {version})")
    return 0


def verify_command(*, version: str, repo: str, base_url: str, world: Environment) -> int:
    """Rebuild tag <version> from a clean checkout and compare with the published image."""
    version = validate_version(version)
    root = repo_root(world.root)
    name = resolve_repo(repo, root, world.env, fallback=DEFAULT_REPO)
    commit = require_local_tag(root, version)
    with tempfile.TemporaryDirectory(prefix="xen-test-vm-verify-") as scratch:
        published = fetch_verified(world, version, name, Path(scratch), base_url).read_bytes()
    rebuilt = build_at_commit(root, commit, world.builder)
    if rebuilt == published:
        world.say(
            f"reproduced: {ASSET_NAME} of {name} {version} == clean rebuild of {commit[:12]} "
            f"(sha256 {sha256_hex(rebuilt)})"
        )
        return 0
    lock = load_lock(root)
    drift = toolchain_drift(lock, world.probe(list(lock.debian_packages)))
    cause = (
        f"; this host's toolchain differs from toolchain.lock: {'; '.join(drift)}"
        if drift
        else "; the toolchain matches toolchain.lock, so the build is not reproducible"
    )
    raise ReleaseError(
        f"rebuild of {version} ({commit[:12]}) differs from the published {ASSET_NAME}: "
        f"published sha256 {sha256_hex(published)}, rebuilt {sha256_hex(rebuilt)}{cause}"
    )


def _optional_root(start: Path) -> Path | None:
    try:
        return repo_root(start)
    except ReleaseError:
        return None
