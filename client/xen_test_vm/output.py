"""Human tables on a TTY, JSON for machines, a progress bar for transfers."""

from __future__ import annotations

import json
import sys
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


class ProgressBar:
    """A one-line bar on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = width * done // total
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done * 100 // total:3d}% "
            f"{done // 1024} KiB"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
