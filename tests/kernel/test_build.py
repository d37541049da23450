"""The kernel build: reproducible bytes, an image Xen loads as PV and as PVH, linker-script
assertions.

No lab needed: these check the files the build writes.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.kernel.conftest import KERNEL_DIR, build_kernel

# Xen's ELF note types (xen/include/public/elfnote.h).
NOTE_ENTRY = 1
NOTE_HYPERCALL_PAGE = 2
NOTE_VIRT_BASE = 3
NOTE_XEN_VERSION = 5
NOTE_GUEST_OS = 6
NOTE_LOADER = 8
NOTE_PHYS32_ENTRY = 18
PT_LOAD = 1
PT_NOTE = 4


def xen_notes(elf: bytes) -> dict[int, bytes]:
    """The descriptors of the "Xen" notes found through the program headers."""
    assert elf[:4] == b"\x7fELF" and elf[4] == 2, "not a 64-bit ELF"
    e_phoff, e_phentsize, e_phnum = (
        struct.unpack_from("<Q", elf, 32)[0],
        *struct.unpack_from("<HH", elf, 54),
    )
    notes: dict[int, bytes] = {}
    for index in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, e_phoff + index * e_phentsize
        )
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos < end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            desc_start = pos + 12 + (namesz + 3) // 4 * 4
            if name == b"Xen":
                notes[note_type] = elf[desc_start : desc_start + descsz]
            pos = desc_start + (descsz + 3) // 4 * 4
    return notes


def copy_kernel_tree(destination: Path) -> Path:
    """A copy of the kernel sources outside git (revision then comes from SOURCE_REVISION)."""
    tree = destination / "kernel"
    shutil.copytree(KERNEL_DIR, tree, ignore=shutil.ignore_patterns("out", "*.o", "*.d"))
    return tree


def build_tree(tree: Path, out_dir: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(tree), f"O={out_dir}", *variables, "image"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_two_builds_in_different_directories_are_identical(tmp_path: Path) -> None:
    # The revision is pinned: in a shared working tree HEAD may move between two builds.
    first = build_kernel(tmp_path / "one", SOURCE_REVISION="pinned-rev")
    second = build_kernel(tmp_path / "two" / "deeper", SOURCE_REVISION="pinned-rev")
    assert first.read_bytes() == second.read_bytes()


def test_copies_of_the_source_in_different_places_build_identical_images(tmp_path: Path) -> None:
    images = []
    for place in ("first", "second/deeper"):
        tree = copy_kernel_tree(tmp_path / place)
        result = build_tree(tree, tmp_path / place / "out", "SOURCE_REVISION=test-rev-1234")
        assert result.returncode == 0, result.stderr
        images.append((tmp_path / place / "out" / "test-vm.xen.gz").read_bytes())
    assert images[0] == images[1]
    unpacked = gzip.decompress(images[0])
    assert b"test-rev-1234" in unpacked
    assert str(tmp_path).encode() not in unpacked


def test_image_embeds_no_build_paths_and_gzip_has_no_name_or_time(kernel_image: Path) -> None:
    packed = kernel_image.read_bytes()
    flags, mtime = packed[3], struct.unpack_from("<I", packed, 4)[0]
    assert flags & 0x08 == 0, "gzip header carries a file name"
    assert mtime == 0, "gzip header carries a timestamp"
    unpacked = gzip.decompress(packed)
    assert str(kernel_image.parent).encode() not in unpacked
    assert str(KERNEL_DIR).encode() not in unpacked
    version = (KERNEL_DIR / "VERSION").read_text().strip()
    assert f"{version}".encode() in unpacked


def test_image_is_a_pv_kernel_xen_can_load(kernel_image: Path) -> None:
    elf = gzip.decompress(kernel_image.read_bytes())
    notes = xen_notes(elf)
    assert notes[NOTE_XEN_VERSION] == b"xen-3.0\0"
    assert notes[NOTE_LOADER] == b"generic\0"
    assert notes[NOTE_GUEST_OS] == b"xen-test-vm\0"
    assert struct.unpack("<Q", notes[NOTE_VIRT_BASE])[0] == 0
    e_entry = struct.unpack_from("<Q", elf, 24)[0]
    assert struct.unpack("<Q", notes[NOTE_ENTRY])[0] == e_entry
    hypercall_page = struct.unpack("<Q", notes[NOTE_HYPERCALL_PAGE])[0]
    assert hypercall_page % 4096 == 0
    assert elf[18] == 62, "not x86_64 (EM_X86_64)"


def test_image_is_also_a_pvh_kernel_with_a_32_bit_entry(kernel_image: Path) -> None:
    """PHYS32_ENTRY names a 32-bit physical address inside the executable PT_LOAD segment
    (a PVH builder loads at the physical addresses, which equal the virtual ones here)."""
    elf = gzip.decompress(kernel_image.read_bytes())
    entry = struct.unpack("<I", xen_notes(elf)[NOTE_PHYS32_ENTRY])[0]
    e_phoff, e_phentsize, e_phnum = (
        struct.unpack_from("<Q", elf, 32)[0],
        *struct.unpack_from("<HH", elf, 54),
    )
    executable = []
    for index in range(e_phnum):
        p_type, p_flags, _, p_vaddr, p_paddr, _, p_memsz = struct.unpack_from(
            "<IIQQQQQ", elf, e_phoff + index * e_phentsize
        )
        if p_type == PT_LOAD and p_flags & 1:
            assert p_paddr == p_vaddr
            executable.append((p_paddr, p_paddr + p_memsz))
    assert any(start <= entry < end for start, end in executable), (hex(entry), executable)
    e_entry = struct.unpack_from("<Q", elf, 24)[0]
    assert entry != e_entry, "the PVH entry must be its own 32-bit stub, not the PV _start"


def test_image_size_stays_small(kernel_image: Path) -> None:
    """A guard against accidental growth (the 16 KiB target is tracked by `invoke bench`)."""
    assert kernel_image.stat().st_size < 32 * 1024


def test_linker_assertion_rejects_an_oversized_kernel(tmp_path: Path) -> None:
    result = build_tree(KERNEL_DIR, tmp_path, "KERNEL_MAX_SIZE=0x1000")
    assert result.returncode != 0
    assert "kernel larger than KERNEL_MAX_SIZE" in result.stderr
    assert not (tmp_path / "test-vm.xen.gz").exists()


def test_build_without_xen_headers_fails_with_a_clear_error(tmp_path: Path) -> None:
    result = build_tree(KERNEL_DIR, tmp_path, f"XEN_INCLUDE={tmp_path / 'missing'}")
    assert result.returncode != 0
    assert "no Xen public headers" in result.stderr
    assert "libxen-dev" in result.stderr


@pytest.mark.parametrize("interface", ["0x00000000"])
def test_legacy_interface_version_is_refused(tmp_path: Path, interface: str) -> None:
    """Without an explicit modern __XEN_INTERFACE_VERSION__ the headers would silently pick
    the legacy hypercall numbers; the build must not produce such a kernel."""
    result = build_tree(KERNEL_DIR, tmp_path, f"XEN_INTERFACE_VERSION={interface}")
    assert result.returncode != 0
    assert "interface version" in result.stderr
