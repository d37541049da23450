"""Request bodies that advance the house's progress bar (xen_test_vm.output) as they are sent."""

from __future__ import annotations

from collections.abc import Iterator

from xen_test_vm.output import ProgressBar, progress_stream

__all__ = ["ProgressBar", "ProgressReader", "progress_stream"]


class ProgressReader:
    """A file-like view of bytes for an HTTP request body, advancing a bar as it is sent.

    It offers len() and tell() so requests sends a Content-Length instead of chunking.
    """

    def __init__(self, data: bytes, bar: ProgressBar) -> None:
        self._data = data
        self._position = 0
        self._bar = bar

    def __len__(self) -> int:
        return len(self._data) - self._position

    def tell(self) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._position + size
        chunk = self._data[self._position : end]
        self._position += len(chunk)
        self._bar.advance(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(64 * 1024):
            yield chunk
