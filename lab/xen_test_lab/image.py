"""Build the lab's boot files from unpacked Debian packages: Xen, dom0 kernel and initramfs."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import hypervisor, packages
from .cpio import CpioWriter
from .errors import LabError
from .paths import cache_dir

# The image format changes when this code changes in a way that matters: bump it then.
IMAGE_REVISION = "3"

# In load order (dom0's init insmods them as listed in DOM0_MODULE_LIST; no modprobe).
DOM0_MODULES = (
    "drivers/xen/xen-evtchn.ko",
    "drivers/xen/xen-privcmd.ko",
    "drivers/xen/xenfs/xenfs.ko",
    "drivers/xen/xen-gntdev.ko",
    "drivers/xen/xen-gntalloc.ko",
    # virtio-net, not e1000: its link is up at probe, where e1000's came up ~2.5 s later and
    # a login that raced it waited for TCP retransmits (READY -> ssh 7.6 s once).
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
)
DOM0_MODULE_LIST = "usr/lib/xen-lab/modules"
# Whole package trees the host needs (libraries come in by ELF dependency).
TREE_PACKAGES = (
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "busybox-static",
    "openssh-server",
    "openssh-sftp-server",
    "openssh-client",
)
_UNWANTED = re.compile(
    r"^usr/share/(doc|man|locale|lintian|bug|info|apport|python3|runit)/|"
    r"^usr/lib/xen-4.17/(boot|lib/python)/|^etc/(init\.d|default|sv|ufw|pam\.d)/"
)
# Where libxl looks for the PV shim unless `pvshim_path` says otherwise (XENFIRMWAREDIR).
SHIM_PATH = "/usr/lib/xen-4.17/boot/xen-shim"
# Its name in the image directory, beside the baseline guest's files.
SHIM_FILE = "xen-shim"
# Top-level directories that are links into /usr on a merged-/usr Debian.
_MERGED = ("bin", "sbin", "lib", "lib64")
_XZ_MAGIC = b"\xfd7zXZ\x00"


@dataclass(frozen=True)
class LabImage:
    """The files QEMU boots: Xen, the dom0 kernel and its initramfs, plus a baseline guest."""

    xen: Path
    dom0_kernel: Path
    dom0_initramfs: Path
    kernel_release: str
    hypervisor: str = "debian"  # "shadow": built from Debian's source with shadow paging
    xen_version: str = ""  # the Debian version the hypervisor comes from
    tools_version: str = ""  # the Debian version of dom0's Xen tools (xen-utils-4.17)
    hypervisor_build_seconds: float | None = None  # shadow only: its build's wall time
    hypervisor_built_now: bool = False
    # The Linux baseline guest's files: beside the image, copied into dom0 only when used.
    baseline_kernel: Path | None = None
    baseline_initrd: Path | None = None

    @property
    def mixed_versions(self) -> bool:
        """The hypervisor and dom0's tools come from different Debian versions of Xen."""
        return bool(self.xen_version) and self.xen_version != self.tools_version

    def describe(self) -> dict[str, object]:
        """What the bench report and `invoke lab` say about this image's Xen."""
        return {
            "hypervisor": self.hypervisor,
            "xen_version": self.xen_version,
            "tools_version": self.tools_version,
            "mixed_versions": self.mixed_versions,
            "hypervisor_build_seconds": self.hypervisor_build_seconds,
            "hypervisor_built_in_this_run": self.hypervisor_built_now,
        }


def _usr_path(relative: str) -> str:
    head, _, rest = relative.partition("/")
    return f"usr/{head}/{rest}" if head in _MERGED and rest else relative


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def _needed(path: Path) -> list[str]:
    result = subprocess.run(
        ["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=False
    )
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", result.stdout)


class _RootBuilder:
    """Copies files from the staging root into the dom0 tree, merged-/usr style."""

    def __init__(self, staging: Path, tree: Path) -> None:
        self.staging = staging
        self.tree = tree
        self.library_dirs = [
            staging / d
            for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib")
        ]

    def add(self, relative: str) -> None:
        source = self.staging / relative
        target = self.tree / _usr_path(relative)
        if target.exists() or target.is_symlink():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            link = os.readlink(source)
            os.symlink(link, target)
            # Follow one hop at a time so that chains of links arrive whole.
            if link.startswith("/"):
                self.add(os.path.normpath(link.lstrip("/")))
            else:
                self.add(os.path.normpath(os.path.join(os.path.dirname(relative), link)))
        elif source.is_file():
            shutil.copy2(source, target)

    def add_library(self, soname: str) -> None:
        for directory in self.library_dirs:
            candidate = directory / soname
            if candidate.exists():
                self.add(str(candidate.relative_to(self.staging)))
                return
        raise LabError(f"no Debian package in the lab set provides {soname}")

    def close_dependencies(self) -> None:
        """Add every shared library that an ELF file in the tree needs, transitively."""
        seen: set[str] = set()
        changed = True
        while changed:
            changed = False
            for path in sorted(self.tree.rglob("*")):
                if path.is_symlink() or not path.is_file() or not _is_elf(path):
                    continue
                for soname in _needed(path):
                    if soname not in seen:
                        seen.add(soname)
                        self.add_library(soname)
                        changed = True


def _package_files(debs: dict[str, Path], name: str) -> list[str]:
    listing = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(debs[name])], capture_output=True, check=True
    ).stdout
    names = subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True).stdout
    files = []
    for line in names.decode().splitlines():
        relative = line.removeprefix("./").rstrip("/")
        if relative and not _UNWANTED.search(relative):
            files.append(relative)
    return files


def _extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside Debian's xz bzImage: it boots faster than the compressed one."""
    offset = bzimage.find(_XZ_MAGIC)
    if offset < 0:
        raise LabError("Debian's kernel image is not xz-compressed as expected")
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = decompressor.decompress(bzimage[offset:])
    if not elf.startswith(b"\x7fELF"):
        raise LabError("the kernel image did not unpack to an ELF file")
    return elf


def _write_etc(tree: Path, authorized_key: str | None) -> None:
    etc = tree / "etc"
    (etc / "ssh").mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(
        "root::0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n")
    (etc / "shadow").chmod(0o600)
    (etc / "hosts").write_text("127.0.0.1 localhost xen-lab\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nshadow: files\nhosts: files\n")
    rootfs = resources.files("xen_test_lab") / "rootfs"
    (etc / "ssh" / "sshd_config").write_text((rootfs / "sshd_config").read_text())
    (tree / "root" / ".ssh").mkdir(parents=True, exist_ok=True)
    (tree / "root").chmod(0o700)
    if authorized_key:
        (tree / "root" / ".ssh" / "authorized_keys").write_text(authorized_key)


def _baseline_initramfs(staging: Path) -> bytes:
    """A busybox-only initramfs for the Linux baseline guest (busybox init handles poweroff)."""
    rootfs = resources.files("xen_test_lab") / "rootfs"
    out = io.BytesIO()
    writer = CpioWriter(out)
    for d in ("bin", "dev", "etc", "etc/init.d", "proc", "sys", "sbin", "tmp"):
        writer.directory(d)
    writer.char_device("dev/console", 5, 1)
    writer.file("bin/busybox", (staging / "bin/busybox").read_bytes(), 0o755)
    for applet in ("sh", "mount", "echo", "sleep", "reboot", "poweroff", "halt", "cat", "ls"):
        writer.symlink(f"bin/{applet}", "busybox")
    writer.symlink("sbin/init", "../bin/busybox")
    writer.symlink("init", "bin/busybox")
    for applet in ("poweroff", "reboot", "halt"):
        writer.symlink(f"sbin/{applet}", "../bin/busybox")
    writer.file("etc/inittab", (rootfs / "baseline-inittab").read_bytes())
    writer.file("etc/init.d/rcS", (rootfs / "baseline-init").read_bytes(), 0o755)
    writer.close()
    return out.getvalue()


def _build(pkgs: list[packages.Package], debs_dir: Path, out: Path) -> None:
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    debs = {p.name: debs_dir / p.filename for p in pkgs}
    staging = work / "staging"
    packages.unpack(list(debs.values()), staging)

    (work / "xen").write_bytes(gzip.decompress((staging / "boot/xen-4.17-amd64.gz").read_bytes()))
    kernel_name = next(p.name for p in pkgs if p.name.startswith("linux-image-"))
    release = kernel_name.removeprefix("linux-image-")
    bzimage = (staging / f"boot/vmlinuz-{release}").read_bytes()
    (work / "vmlinux").write_bytes(_extract_vmlinux(bzimage))

    tree = work / "tree"
    builder = _RootBuilder(staging, tree)
    for name in TREE_PACKAGES:
        for relative in _package_files(debs, name):
            if not (staging / relative).is_dir() or (staging / relative).is_symlink():
                builder.add(relative)
    builder.add("lib64/ld-linux-x86-64.so.2")  # the ELF interpreter every binary names
    builder.add_library("libgcc_s.so.1")  # glibc dlopens it for pthread_cancel; xl aborts without
    builder.close_dependencies()
    for module in DOM0_MODULES:
        builder.add(f"lib/modules/{release}/kernel/{module}")
    module_list = tree / DOM0_MODULE_LIST
    module_list.parent.mkdir(parents=True, exist_ok=True)
    module_list.write_text("".join(f"/lib/modules/{release}/kernel/{m}\n" for m in DOM0_MODULES))
    # busybox's applets as links in the image, as `busybox --install -s /usr/bin` would make
    # them (no file a package brings is replaced): dom0's init made ~400 links every boot.
    applets = subprocess.run(
        [str(staging / "bin/busybox"), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = tree / "usr/bin" / applet
        if not (link.exists() or link.is_symlink()):
            link.symlink_to("/bin/busybox")
    # Debian's /usr/sbin/xl is a version-picking wrapper script; the lab has one Xen.
    for name in ("xl", "xenstored", "oxenstored", "xenconsoled", "xen-init-dom0"):
        link = tree / "usr/sbin" / name
        link.unlink(missing_ok=True)
        link.symlink_to(f"/usr/lib/xen-4.17/bin/{name}")
    # Not in dom0's initramfs: 8 MB less for every boot to load and unpack (LabHost copies
    # them in when a test or the bench boots the baseline).
    (work / "baseline-vmlinuz").write_bytes(bzimage)
    (work / "baseline-initrd").write_bytes(_baseline_initramfs(staging))
    # Debian's PV shim (xen-utils-4.17, built from the same source as the hypervisor package):
    # 6 MB that only PV-in-PVH guests use, so it too is copied in on use (LabHost.install_shim).
    shutil.copy(staging / SHIM_PATH.lstrip("/"), work / SHIM_FILE)
    rootfs = resources.files("xen_test_lab") / "rootfs"
    (tree / "init").write_bytes((rootfs / "init").read_bytes())
    (tree / "init").chmod(0o755)
    _write_etc(tree, None)

    with (work / "dom0.cpio").open("wb") as f:
        writer = CpioWriter(f)
        for top in _MERGED:
            writer.symlink(top, f"usr/{top}")
        for d in ("dev", "proc", "sys", "run", "tmp", "var", "var/log", "var/lib"):
            writer.directory(d)
        writer.char_device("dev/console", 5, 1)
        writer.tree(tree)
        writer.close()
    (work / "kernel-release").write_text(release)
    shutil.rmtree(staging)
    shutil.rmtree(tree)
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)


def _digest(pkgs: list[packages.Package]) -> str:
    rootfs = resources.files("xen_test_lab") / "rootfs"
    h = hashlib.sha256(packages.fingerprint(pkgs).encode() + IMAGE_REVISION.encode())
    for name in sorted(p.name for p in rootfs.iterdir()):
        h.update(name.encode() + (rootfs / name).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def ensure_image(
    progress: bool = True, hypervisor_kind: str = hypervisor.DEFAULT_HYPERVISOR
) -> LabImage:
    """Fetch the packages and build the lab image, unless the cache already has this version.

    hypervisor_kind "shadow" boots a hypervisor built from Debian's xen source with shadow
    paging (cached by source version), "debian" the binary package's own.
    """
    if hypervisor_kind not in hypervisor.HYPERVISORS:
        raise LabError(
            f"unknown hypervisor {hypervisor_kind!r}: use {' or '.join(hypervisor.HYPERVISORS)}"
        )
    pkgs = packages.resolve()
    # The hypervisor first: its fetch or build fails (or not) before the long image build.
    built = hypervisor.ensure_shadow_xen(progress) if hypervisor_kind == "shadow" else None
    out = cache_dir() / "images" / _digest(pkgs)
    if not (out / "dom0.cpio").exists():
        for stale in out.parent.glob("*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        if progress:
            print(f"lab: building the Xen lab image in {out}", flush=True)
        debs = packages.download(pkgs, cache_dir() / "debs")
        del debs
        _build(pkgs, cache_dir() / "debs", out)
    versions = {p.name: p.version for p in pkgs}
    tools = versions.get("xen-utils-4.17", "")
    image = LabImage(
        xen=out / "xen",
        dom0_kernel=out / "vmlinux",
        dom0_initramfs=out / "dom0.cpio",
        kernel_release=(out / "kernel-release").read_text(),
        xen_version=versions.get("xen-hypervisor-4.17-amd64", ""),
        tools_version=tools,
        baseline_kernel=out / "baseline-vmlinuz",
        baseline_initrd=out / "baseline-initrd",
    )
    if built is None:
        return image
    return dataclasses.replace(
        image,
        xen=built.xen,
        hypervisor="shadow",
        xen_version=built.source_version,
        hypervisor_build_seconds=built.build_seconds,
        hypervisor_built_now=built.built_now,
    )
