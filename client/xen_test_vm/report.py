"""Smoke results as they come (a table), as JSON, and as JUnit XML."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import ExitCode
from .smoke import ERROR, FAIL, PASS, SKIP, Result

COLUMNS = (("scenario", 28), ("group", 9), ("result", 6), ("time", 7))


class LiveTable:
    """Prints one row per finished scenario (colour on a TTY)."""

    def __init__(self, stream: TextIO = sys.stdout, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        # https://no-color.org: any non-empty NO_COLOR turns colour off.
        self.colour = stream.isatty() and not os.environ.get("NO_COLOR")
        self._header_done = False

    def _colour(self, outcome: str) -> str:
        if not self.colour:
            return f"{outcome.upper():<6}"
        code = {PASS: "32", FAIL: "31", ERROR: "35", SKIP: "33"}[outcome]
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
        if result.console:
            self.stream.write(
                "".join(f"    | {text}\n" for text in console_text(result.console).splitlines())
            )
        self.stream.flush()

    def summary(self, results: Sequence[Result], seconds: float) -> None:
        """Totals."""
        if not self.enabled:
            return
        counts = count(results)
        self.stream.write(
            f"\n{counts[PASS]} passed, {counts[FAIL]} failed, {counts[ERROR]} errors, "
            f"{counts[SKIP]} skipped in {seconds:.1f} s\n"
        )


def count(results: Sequence[Result]) -> dict[str, int]:
    """How many results have each outcome."""
    return {o: sum(r.outcome == o for r in results) for o in (PASS, FAIL, ERROR, SKIP)}


def exit_code(results: Sequence[Result]) -> ExitCode:
    """FAILED if any scenario failed, else ERRORS if any could not run, else OK."""
    counts = count(results)
    if counts[FAIL]:
        return ExitCode.FAILED
    if counts[ERROR]:
        return ExitCode.ERRORS
    return ExitCode.OK


def as_json(
    results: Sequence[Result], host: str, toolstack: str, seconds: float, mode: str
) -> dict[str, Any]:
    """The machine-readable report (`mode`: the boot mode the run's VMs used)."""
    return {
        "host": host,
        "toolstack": toolstack,
        "mode": mode,
        "seconds": round(seconds, 3),
        "passed": count(results)[PASS],
        "failed": count(results)[FAIL],
        "errors": count(results)[ERROR],
        "skipped": count(results)[SKIP],
        "exit_code": int(exit_code(results)),
        "scenarios": [
            {
                "name": r.name,
                "group": r.group,
                "expected": r.expected,
                "outcome": r.outcome,
                "detail": r.detail,
                "seconds": round(r.seconds, 3),
                # A failed row's guests' console lines, by domid (where the host keeps them).
                "console": {str(domid): lines for domid, lines in r.console.items()},
            }
            for r in results
        ],
    }


def console_text(console: dict[int, list[str]]) -> str:
    """The consoles of a row's domains, one block per domain."""
    return "".join(
        f"--- console of domain {domid} ---\n" + "".join(f"{line}\n" for line in lines)
        for domid, lines in console.items()
    )


def write_junit(
    path: Path,
    results: Sequence[Result],
    host: str,
    seconds: float,
    *,
    mode: str | None = None,
    toolstack: str | None = None,
) -> None:
    """JUnit XML (one testsuite, one testcase per scenario).

    With a boot mode, the suite's name and each case's class name carry it, so the reports of a
    pv and a pvh run merged by a CI server stay apart; mode and toolstack are also properties.
    """
    suite = ET.Element(
        "testsuite",
        name=f"xen-test-vm smoke ({mode})" if mode else "xen-test-vm smoke",
        tests=str(len(results)),
        failures=str(count(results)[FAIL]),
        errors=str(count(results)[ERROR]),
        skipped=str(sum(r.outcome == SKIP for r in results)),
        time=f"{seconds:.3f}",
        hostname=host,
    )
    known = {"mode": mode, "toolstack": toolstack}
    if any(known.values()):
        properties = ET.SubElement(suite, "properties")
        for name, value in known.items():
            if value:
                ET.SubElement(properties, "property", name=name, value=value)
    prefix = f"smoke.{mode}" if mode else "smoke"
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=f"{prefix}.{r.group}", name=r.name, time=f"{r.seconds:.3f}"
        )
        if r.outcome == FAIL:
            failure = ET.SubElement(case, "failure", message=r.detail or "failed")
            failure.text = f"expected: {r.expected}\nobserved: {r.detail}"
        elif r.outcome == ERROR:
            error = ET.SubElement(case, "error", message=r.detail or "error")
            error.text = f"expected: {r.expected}\nthe scenario could not run: {r.detail}"
        elif r.outcome == SKIP:
            ET.SubElement(case, "skipped", message=r.detail)
        if r.console:
            ET.SubElement(case, "system-out").text = console_text(r.console)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)
