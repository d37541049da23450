"""A dependency-free progress bar for transfers, drawn only on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TextIO

_WIDTH = 30


def _kib(count: int) -> str:
    return f"{count / 1024:.1f} KiB"


class ProgressBar:
    """Shows `label [#####-----] 50% 12.0 KiB/24.0 KiB` on stream, if any."""

    def __init__(self, label: str, total: int, stream: TextIO | None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream
        self._last_draw = 0.0

    def advance(self, count: int) -> None:
        """Record count more bytes; redraw at most ten times a second."""
        self.done += count
        now = time.monotonic()
        if self.stream is not None and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        if self.stream is None:
            return
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * _WIDTH)
            bar = "#" * filled + "-" * (_WIDTH - filled)
            text = f"{self.label} [{bar}] {fraction:4.0%} {_kib(self.done)}/{_kib(self.total)}"
        else:
            text = f"{self.label} {_kib(self.done)}"
        self.stream.write("\r" + text)
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.stream is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def progress_stream() -> TextIO | None:
    """Progress bars go to stderr, and only when it is a terminal."""
    return sys.stderr if sys.stderr.isatty() else None


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
