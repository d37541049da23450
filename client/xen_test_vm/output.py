"""Human tables on a TTY, JSON for machines, a progress bar for transfers."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO


def print_json(data: Any, stream: TextIO = sys.stdout) -> None:
    """Indented JSON with a trailing newline."""
    stream.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Left-aligned columns."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


def key_values(data: dict[str, Any]) -> str:
    """`key  value` lines."""
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{k.ljust(width)}  {'' if v is None else v}" for k, v in data.items())


def progress_stream() -> TextIO | None:
    """Progress bars go to stderr, and only when it is a terminal."""
    return sys.stderr if sys.stderr.isatty() else None


def _kib(count: int) -> str:
    return f"{count / 1024:.1f} KiB"


class ProgressBar:
    """The house's one progress bar: `label [#####-----]  50% 12.0 KiB/24.0 KiB` on a stream.

    Feed it with advance(count) or call it as a transfer callback bar(done, total); it redraws
    at most ten times a second and draws nothing without a stream.
    """

    WIDTH = 30

    def __init__(
        self, label: str, total: int = 0, stream: TextIO | None = None, *, unit: str = "bytes"
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream
        self._last_draw = 0.0
        self._finished = False

    @classmethod
    def on_terminal(cls, label: str, total: int = 0, *, unit: str = "bytes") -> ProgressBar:
        """A bar on stderr if it is a terminal, else a silent one (unit: bytes or items)."""
        return cls(label, total, progress_stream(), unit=unit)

    def __call__(self, done: int, total: int) -> None:
        self.total = max(total, 0)
        self.advance(done - self.done)
        if self.total and done >= self.total:
            self.finish()

    def advance(self, count: int) -> None:
        """Record count more bytes (or items); redraw at most ten times a second."""
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
            filled = int(fraction * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            text = f"{self.label} [{bar}] {fraction:4.0%} {self._amount(self.done)}/"
            text += self._amount(self.total)
        else:
            text = f"{self.label} {self._amount(self.done)}"
        self.stream.write("\r" + text)
        self.stream.flush()

    def _amount(self, count: int) -> str:
        return _kib(count) if self.unit == "bytes" else str(count)

    def finish(self) -> None:
        """End the bar's line (once)."""
        if self.stream is not None and not self._finished:
            self._finished = True
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
