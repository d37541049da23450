"""The pinned toolchain (toolchain.lock) and how the build host compares with it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from xen_test_release.errors import ReleaseError

LOCK_NAME = "toolchain.lock"

#: Reports the installed version of each named Debian package (None when not installed).
PackageProbe = Callable[[list[str]], dict[str, str | None]]


@dataclass(frozen=True)
class ToolchainLock:
    """The parsed KEY=VALUE lines of toolchain.lock."""

    entries: Mapping[str, str]

    def get(self, key: str) -> str:
        """Return a required entry."""
        try:
            return self.entries[key]
        except KeyError:
            raise ReleaseError(f"{LOCK_NAME} has no {key}= line") from None

    @property
    def debian_packages(self) -> dict[str, str]:
        """Debian package name -> pinned version, for every package in DEB_PACKAGES."""
        return {name: self.get(package_key(name)) for name in self.get("DEB_PACKAGES").split()}


def package_key(package: str) -> str:
    """The lock key of a Debian package: libxen-dev -> DEB_LIBXEN_DEV."""
    return "DEB_" + package.upper().replace("-", "_").replace(".", "_").replace("+", "_")


def parse_lock(text: str) -> ToolchainLock:
    """Parse shell-style KEY=VALUE lines; comments and blank lines are ignored."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            raise ReleaseError(f"{LOCK_NAME} line {number}: expected KEY=VALUE, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        entries[key] = value
    return ToolchainLock(entries)


def load_lock(root: Path) -> ToolchainLock:
    """Read toolchain.lock from the repository root."""
    path = root / LOCK_NAME
    try:
        return parse_lock(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"{path} is missing") from None


def probe_debian_packages(names: list[str]) -> dict[str, str | None]:
    """Ask dpkg which versions of the named packages are installed."""
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package}\\t${db:Status-Abbrev}\\t${Version}\\n", *names],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise ReleaseError("dpkg-query not found: releases are built on Debian") from None
    installed: dict[str, str | None] = dict.fromkeys(names)
    for line in result.stdout.splitlines():
        package, status, version = [*line.split("\t"), "", ""][:3]
        if status.startswith("ii"):
            installed[package.split(":")[0]] = version
    return installed


def toolchain_drift(lock: ToolchainLock, installed: Mapping[str, str | None]) -> list[str]:
    """Describe each pinned package whose installed version differs from the lock."""
    return [
        f"{name} {installed.get(name) or 'not installed'} (pinned {pinned})"
        for name, pinned in lock.debian_packages.items()
        if installed.get(name) != pinned
    ]


def require_pinned_toolchain(lock: ToolchainLock, probe: PackageProbe) -> dict[str, str]:
    """Return the installed toolchain, or raise if it is not the one toolchain.lock pins."""
    installed = probe(list(lock.debian_packages))
    drift = toolchain_drift(lock, installed)
    if drift:
        raise ReleaseError(
            "the build host's toolchain differs from toolchain.lock: "
            + "; ".join(drift)
            + " — build in the pinned Docker image (see Dockerfile) or update toolchain.lock"
        )
    return {name: version for name, version in installed.items() if version is not None}
