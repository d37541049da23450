"""A deterministic writer for the newc cpio archives Linux unpacks as its initramfs."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


class CpioWriter:
    """Writes entries with fixed owners and times, so the same tree gives the same bytes."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._inode = 0

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        self._inode += 1
        encoded = name.encode() + b"\0"
        fields = (
            self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0,
        )  # fmt: skip
        header = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
        self._out.write(header + encoded)
        self._out.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self._out.write(data)
        self._out.write(b"\0" * (-len(data) % 4))

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def tree(self, root: Path) -> None:
        """Add everything below root (sorted), keeping modes and symlinks."""
        for path in sorted(root.rglob("*")):
            name = str(path.relative_to(root))
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                self.symlink(name, str(path.readlink()))
            elif stat.S_ISDIR(info.st_mode):
                self.directory(name, stat.S_IMODE(info.st_mode))
            elif stat.S_ISREG(info.st_mode):
                self.file(name, path.read_bytes(), stat.S_IMODE(info.st_mode))

    def close(self) -> None:
        self._entry(_TRAILER, 0)
        self._out.write(b"\0" * (-self._out.tell() % 512))
