"""Smoke results as they come (a table), as JSON, and as JUnit XML."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .smoke import FAIL, SKIP, Result

COLUMNS = (("scenario", 28), ("group", 9), ("result", 6), ("time", 7))


class LiveTable:
    """Prints one row per finished scenario (colour on a TTY)."""

    def __init__(self, stream: TextIO = sys.stdout, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self._header_done = False

    def _colour(self, outcome: str) -> str:
        if not self.tty:
            return f"{outcome.upper():<6}"
        code = {"pass": "32", "fail": "31", "skip": "33"}[outcome]
        return f"\033[{code}m{outcome.upper():<6}\033[0m"

    def header(self) -> None:
        """Column titles."""
        if not self.enabled or self._header_done:
            return
        self._header_done = True
        title = "  ".join(name.ljust(width) for name, width in COLUMNS) + "  expected / observed"
        self.stream.write(title + "\n" + "-" * len(title) + "\n")
        self.stream.flush()

    def __call__(self, result: Result) -> None:
        if not self.enabled:
            return
        self.header()
        line = (
            f"{result.name:<28}  {result.group:<9}  {self._colour(result.outcome)}  "
            f"{result.seconds:6.1f}s  {result.expected}"
        )
        if result.detail:
            line += f" -- {result.detail}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def summary(self, results: Sequence[Result], seconds: float) -> None:
        """Totals."""
        if not self.enabled:
            return
        failed = sum(r.outcome == FAIL for r in results)
        skipped = sum(r.outcome == SKIP for r in results)
        passed = len(results) - failed - skipped
        self.stream.write(
            f"\n{passed} passed, {failed} failed, {skipped} skipped in {seconds:.1f} s\n"
        )


def as_json(results: Sequence[Result], host: str, toolstack: str, seconds: float) -> dict[str, Any]:
    """The machine-readable report."""
    return {
        "host": host,
        "toolstack": toolstack,
        "seconds": round(seconds, 3),
        "passed": sum(r.outcome == "pass" for r in results),
        "failed": sum(r.outcome == FAIL for r in results),
        "skipped": sum(r.outcome == SKIP for r in results),
        "scenarios": [
            {
                "name": r.name,
                "group": r.group,
                "expected": r.expected,
                "outcome": r.outcome,
                "detail": r.detail,
                "seconds": round(r.seconds, 3),
            }
            for r in results
        ],
    }


def write_junit(path: Path, results: Sequence[Result], host: str, seconds: float) -> None:
    """JUnit XML (one testsuite, one testcase per scenario)."""
    suite = ET.Element(
        "testsuite",
        name="xen-test-vm smoke",
        tests=str(len(results)),
        failures=str(sum(r.outcome == FAIL for r in results)),
        skipped=str(sum(r.outcome == SKIP for r in results)),
        time=f"{seconds:.3f}",
        hostname=host,
    )
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=f"smoke.{r.group}", name=r.name, time=f"{r.seconds:.3f}"
        )
        if r.outcome == FAIL:
            failure = ET.SubElement(case, "failure", message=r.detail or "failed")
            failure.text = f"expected: {r.expected}\nobserved: {r.detail}"
        elif r.outcome == SKIP:
            ET.SubElement(case, "skipped", message=r.detail)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)
