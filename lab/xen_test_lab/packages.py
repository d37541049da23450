"""Fetch Debian packages with apt-get download into the cache and unpack them with dpkg -x."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError

# What the lab host is made of. Libraries come in through their dependency closure.
TOP_PACKAGES = (
    "xen-hypervisor-4.17-amd64",
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "busybox-static",
    "openssh-server",
    "openssh-sftp-server",
    "openssh-client",  # dom0's ssh: xl migrate to the other host of the two-host lab
    "libgcc-s1",
)
KERNEL_META_PACKAGE = "linux-image-amd64"
# Dependencies that only matter to maintainer scripts or interpreters the lab never runs;
# elogind would shadow the real libsystemd0 that sshd links.
_SKIPPED_DEPENDENCY = re.compile(
    r"perl|python|debconf|libdebian-installer|libnewt|libslang|libsemanage|elogind"
)


@dataclass(frozen=True)
class Package:
    """One binary package at the exact version apt would install."""

    name: str
    version: str
    arch: str

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def _apt(args: list[str]) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{args[0]} not found: the lab needs Debian's apt tools") from exc
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no error text"]
        raise LabError(f"{' '.join(args[:2])} failed: {detail[0]}")
    return result.stdout


def _show(names: list[str]) -> dict[str, Package]:
    """Candidate versions of the named packages (apt-cache show, first stanza is the candidate)."""
    out = _apt(["apt-cache", "show", "--no-all-versions", *names])
    found: dict[str, Package] = {}
    for stanza in out.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and fields["Package"] not in found:
            found[fields["Package"]] = Package(
                fields["Package"], fields["Version"], fields.get("Architecture", "amd64")
            )
    return found


def _kernel_package() -> str:
    out = _apt(["apt-cache", "show", "--no-all-versions", KERNEL_META_PACKAGE])
    match = re.search(r"^Depends: .*?(linux-image-[0-9][^ ,]*)", out, re.MULTILINE)
    if not match:
        raise LabError(f"cannot tell which kernel {KERNEL_META_PACKAGE} depends on")
    return match.group(1)


def _library_closure(names: list[str]) -> list[str]:
    out = _apt(
        [
            "apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
            "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *names,
        ]
    )  # fmt: skip
    libraries = set()
    for line in out.splitlines():
        if line.startswith((" ", "<")):
            continue
        if line.startswith(("lib", "zlib")) and not _SKIPPED_DEPENDENCY.search(line):
            libraries.add(line.strip())
    return sorted(libraries)


def resolve() -> list[Package]:
    """Every package the lab needs, at the versions apt would install now."""
    top = [*TOP_PACKAGES, _kernel_package()]
    names = sorted(set(top) | set(_library_closure(top)))
    try:
        found = _show(names)
    except LabError as exc:
        raise LabError(
            f"{exc} (is `apt-get update` done and are Debian bookworm sources configured?)"
        ) from exc
    missing = [name for name in top if name not in found]
    if missing:
        raise LabError(f"apt knows no package {missing[0]}: run `apt-get update` (as root)")
    return [found[name] for name in names if name in found]


def fingerprint(packages: list[Package]) -> str:
    """A digest of the exact package set: the lab image is rebuilt only when it changes."""
    text = "\n".join(f"{p.name} {p.version} {p.arch}" for p in packages)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def download(packages: list[Package], debs: Path) -> list[Path]:
    """Download whatever is not cached yet; return the .deb paths."""
    debs.mkdir(parents=True, exist_ok=True)
    wanted = [p for p in packages if not (debs / p.filename).exists()]
    if wanted:
        partial = debs / "partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        result = subprocess.run(
            ["apt-get", "download", "-q", *[f"{p.name}={p.version}" for p in wanted]],
            cwd=partial,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            lines = [ln for ln in result.stderr.splitlines() if ln.startswith("E:")]
            detail = lines[0] if lines else "see apt-get download"
            raise LabError(
                f"downloading Debian packages failed ({detail}); check the network and "
                "`apt-get update`, then retry"
            )
        for deb in partial.glob("*.deb"):
            deb.rename(debs / deb.name)
        shutil.rmtree(partial, ignore_errors=True)
    paths = [debs / p.filename for p in packages]
    absent = [p.name for p in paths if not p.exists()]
    if absent:
        raise LabError(f"apt-get download did not produce {absent[0]}")
    return paths


def unpack(debs: list[Path], root: Path) -> None:
    """Unpack packages into a staging root without installing anything on this machine."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in debs:
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True)
        if result.returncode != 0:
            raise LabError(f"cannot unpack {deb.name}: {result.stderr.decode().strip()}")
