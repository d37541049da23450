"""A Xen hypervisor with shadow paging, built from Debian's own `xen` source package.

Debian's binary hypervisor has `# CONFIG_SHADOW_PAGING is not set`, and a PV guest's live
migration needs shadow paging (log-dirty mode). This module fetches the `xen` source package
through a private apt configuration under the lab cache (deb-src lines; the machine's apt setup is
never read or written), builds only the hypervisor with Debian's kconfig (`debian/xen-kconfig`, as
`debian/rules` uses it) plus `CONFIG_SHADOW_PAGING=y`, and caches the result by source version.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError
from .paths import cache_dir

SOURCE_PACKAGE = "xen"
# Where Debian serves bookworm's xen source, newest first (the security archive's newest source
# answered 404 here once: then the main archive's version is used).
SOURCE_ARCHIVES = (
    ("http://deb.debian.org/debian-security", "bookworm-security"),
    ("http://deb.debian.org/debian", "bookworm"),
)
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
EXTRA_CONFIG = "CONFIG_SHADOW_PAGING=y\n"
# Bump when the build recipe changes in a way that matters.
BUILD_REVISION = "1"
LISTS_MAX_AGE_SECONDS = 24 * 3600
BUILD_TOOLS = ("dpkg-source", "make", "gcc", "flex", "bison", "python3")
HYPERVISORS = ("shadow", "debian")
# Debian's binary, again: in a whole-suite run on the shadow build (clean clone, 2026-12-03) 30
# PVH creates in a row lost dom0's SSH (exit 255) after the lab had slowed ~25x (ack 263 ms vs
# 5.5 ms fresh); a fresh shadow lab passes the same tests. Shadow stays a choice (migration).
DEFAULT_HYPERVISOR = "debian"
FALLBACK_HINT = "or boot Debian's own hypervisor (no live migration) with --hypervisor debian"


@dataclass(frozen=True)
class BuiltXen:
    """A shadow-paging hypervisor in the cache and what is known about its build."""

    xen: Path
    source_version: str
    build_seconds: float  # wall time of the build that produced it (on this machine)
    built_now: bool  # False: taken from the cache


def _root() -> Path:
    return cache_dir() / "hypervisor"


def _apt_options(root: Path) -> list[str]:
    apt = root / "apt"
    return [
        "-o", f"Dir::Etc::SourceList={apt / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={apt / 'sources.list.d'}",
        "-o", f"Dir::State::Lists={apt / 'lists'}",
        "-o", f"Dir::Cache={apt / 'cache'}",
        "-o", "Dir::Etc::Preferences=/dev/null",
        "-o", f"Dir::Etc::PreferencesParts={apt / 'preferences.d'}",
        "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip


def _write_apt_config(root: Path) -> None:
    apt = root / "apt"
    for d in ("sources.list.d", "lists/partial", "cache/archives/partial", "preferences.d"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text("")
    (apt / "sources.list.d" / "debian-src.sources").write_text(
        "\n".join(
            f"Types: deb-src\nURIs: {uri}\nSuites: {suite}\nComponents: main\n"
            f"Signed-By: {KEYRING}\n"
            for uri, suite in SOURCE_ARCHIVES
        )
    )


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LabError(
            f"{args[0]} not found: run scripts/bootstrap (it installs the hypervisor's build "
            f"tools), {FALLBACK_HINT}"
        ) from None


def _last_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.startswith(("E:", "W:"))]
    lines = lines or [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    return lines[0] if lines else f"exit status {result.returncode}"


def _update_lists(root: Path) -> None:
    """Refresh the private source lists when they are missing or a day old."""
    lists = root / "apt" / "lists"
    stamp = lists / ".updated"
    if stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_SECONDS:
        return
    result = _run(["apt-get", "-q", *_apt_options(root), "update"])
    have_lists = any(lists.glob("*Sources*"))
    if not have_lists:  # apt-get update exits 0 when every fetch failed with a warning
        raise LabError(
            f"cannot read Debian's source lists ({_last_error(result)}): check the network, "
            f"then retry, {FALLBACK_HINT}"
        )
    if have_lists:
        stamp.touch()


def _compare(a: str, b: str) -> int:
    if a == b:
        return 0
    lower = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False)
    return -1 if lower.returncode == 0 else 1


def source_versions(root: Path) -> list[str]:
    """Versions of the xen source package the private lists know, newest first."""
    result = _run(["apt-cache", *_apt_options(root), "showsrc", SOURCE_PACKAGE])
    versions = {
        line.split(": ", 1)[1].strip()
        for line in result.stdout.splitlines()
        if line.startswith("Version: ")
    }
    if not versions:
        raise LabError(
            f"Debian's source lists name no {SOURCE_PACKAGE!r} source package "
            f"(in {root / 'apt'}): check the network, remove that directory and retry, "
            f"{FALLBACK_HINT}"
        )
    return sorted(versions, key=functools.cmp_to_key(_compare), reverse=True)


def _fetch(root: Path, versions: list[str]) -> tuple[str, Path]:
    """Download the newest source that the archives serve; returns (version, .dsc)."""
    errors = []
    for version in versions:
        folder = root / "sources" / version
        dsc = folder / f"{SOURCE_PACKAGE}_{version.split(':')[-1]}.dsc"
        if dsc.exists() and (folder / ".complete").exists():
            return version, dsc
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        result = _run(
            [
                "apt-get", "-q", *_apt_options(root), "source", "--download-only",
                f"{SOURCE_PACKAGE}={version}",
            ],
            cwd=folder,
        )  # fmt: skip
        if result.returncode == 0 and dsc.exists():
            (folder / ".complete").touch()
            return version, dsc
        errors.append(f"{version}: {_last_error(result)}")
        shutil.rmtree(folder, ignore_errors=True)
    raise LabError(
        f"fetching Debian's xen source failed ({'; '.join(errors)}): check the network, "
        f"then retry, {FALLBACK_HINT}"
    )


def _build(dsc: Path, version: str, out: Path) -> float:
    missing = [tool for tool in BUILD_TOOLS if not shutil.which(tool)]
    if missing:
        raise LabError(
            f"building the shadow-paging hypervisor needs {', '.join(missing)}: run "
            f"scripts/bootstrap, {FALLBACK_HINT}"
        )
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "build.log"
    started = time.monotonic()
    source = work / "src"
    steps = [
        ["dpkg-source", "--no-check", "-x", str(dsc), str(source)],
        ["cp", "debian/xen-kconfig", "xen/.config"],
        ["sh", "-c", f"printf '%s' '{EXTRA_CONFIG}' >> xen/.config"],
        ["make", "-C", "xen", "XEN_TARGET_ARCH=x86_64", "olddefconfig"],
        ["make", f"-j{os.cpu_count() or 1}", "-C", "xen", "XEN_TARGET_ARCH=x86_64"],
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("CFLAGS", "LDFLAGS", "MAKEFLAGS")}
    with log.open("w") as log_file:
        for step in steps:
            log_file.write(f"$ {' '.join(step)}\n")
            log_file.flush()
            result = subprocess.run(
                step,
                cwd=source if step[0] != "dpkg-source" else work,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                check=False,
            )
            if result.returncode != 0:
                kept = _root() / "last-build.log"
                shutil.copy(log, kept)
                shutil.rmtree(work, ignore_errors=True)
                raise LabError(
                    f"building the shadow-paging hypervisor from xen {version} failed at "
                    f"`{' '.join(step[:3])}` (log: {kept}): run scripts/bootstrap for its build "
                    f"tools and retry, {FALLBACK_HINT}"
                )
    config = (source / "xen" / ".config").read_text()
    if "CONFIG_SHADOW_PAGING=y" not in config.splitlines():
        shutil.rmtree(work, ignore_errors=True)
        raise LabError(f"xen {version}'s kconfig dropped CONFIG_SHADOW_PAGING; {FALLBACK_HINT}")
    seconds = round(time.monotonic() - started, 1)
    shutil.copy(source / "xen" / "xen", work / "xen")
    shutil.copy(source / "xen" / ".config", work / "xen.config")
    (work / "build.json").write_text(
        json.dumps(
            {
                "source_version": version,
                "build_seconds": seconds,
                "config": "debian/xen-kconfig + " + EXTRA_CONFIG.strip(),
                "cpus": os.cpu_count(),
            }
        )
    )
    shutil.rmtree(source)
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return seconds


def ensure_shadow_xen(progress: bool = True) -> BuiltXen:
    """The shadow-paging hypervisor of the newest xen source Debian serves, built if needed."""
    root = _root()
    _write_apt_config(root)
    _update_lists(root)
    versions = source_versions(root)
    for version in versions:  # a cached build of a version the archive still lists
        out = root / "builds" / f"{version.replace(':', '_')}-r{BUILD_REVISION}"
        if (out / "xen").exists():
            info = json.loads((out / "build.json").read_text())
            return BuiltXen(out / "xen", version, float(info["build_seconds"]), False)
    version, dsc = _fetch(root, versions)
    out = root / "builds" / f"{version.replace(':', '_')}-r{BUILD_REVISION}"
    if progress:
        print(f"lab: building Xen {version} with shadow paging in {out}", flush=True)
    seconds = _build(dsc, version, out)
    if progress:
        print(f"lab: hypervisor built in {seconds:.0f} s", flush=True)
    return BuiltXen(out / "xen", version, seconds, True)
