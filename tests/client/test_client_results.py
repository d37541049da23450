"""Smoke outcomes (PASS/FAIL/ERROR/SKIP) in the table, JSON, JUnit and the exit code; NO_COLOR;
--timeout on toolstack operations."""

from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from xen_test_vm.cli import within
from xen_test_vm.errors import (
    ConnectionLost,
    ExitCode,
    GuestTimeout,
    OperationTimeout,
    RemoteCommandError,
    SSHError,
    ToolstackError,
    XenstoreLost,
)
from xen_test_vm.report import LiveTable, as_json, exit_code, write_junit
from xen_test_vm.smoke import ERROR, FAIL, PASS, SKIP, Result, ScenarioFailed, outcome_of

MIXED = [
    Result("a", "guest", "x", PASS, "", 1.0),
    Result("b", "guest", "y", FAIL, "state is 'armed'", 1.0),
    Result("c", "toolstack", "z", ERROR, "connection to h lost", 1.0),
    Result("d", "toolstack", "w", SKIP, "no shadow", 0.0),
]


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (ScenarioFailed("observed otherwise"), FAIL),
        (GuestTimeout("no ack"), FAIL),
        (ToolstackError("ACK_TIMEOUT", "xl shutdown"), FAIL),
        (SSHError("cannot reach h"), ERROR),
        (ConnectionLost("lost"), ERROR),
        (XenstoreLost("xenstored went away"), ERROR),
        (RemoteCommandError(["mkdir"], 1, "read-only"), ERROR),
        (KeyError("a bug"), ERROR),
    ],
)
def test_the_host_misbehaving_is_a_failure_the_harness_breaking_an_error(
    exc: BaseException, outcome: str
) -> None:
    assert outcome_of(exc) == outcome


def test_exit_code_failures_before_errors() -> None:
    assert exit_code(MIXED) == ExitCode.FAILED
    assert exit_code([r for r in MIXED if r.outcome != FAIL]) == ExitCode.ERRORS
    assert exit_code([r for r in MIXED if r.outcome in (PASS, SKIP)]) == ExitCode.OK


def test_errors_are_counted_apart_in_json_and_junit(tmp_path: Path) -> None:
    report = as_json(MIXED, "h", "xl", 4.0, "pv")
    assert (report["passed"], report["failed"], report["errors"], report["skipped"]) == (1, 1, 1, 1)
    assert report["exit_code"] == 1
    assert [s["outcome"] for s in report["scenarios"]] == ["pass", "fail", "error", "skip"]
    path = tmp_path / "smoke.xml"
    write_junit(path, MIXED, "h", 4.0)
    suite = ET.parse(path).getroot()
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["b"].find("failure") is not None and cases["b"].find("error") is None
    error = cases["c"].find("error")
    assert error is not None and error.get("message") == "connection to h lost"
    assert cases["c"].find("failure") is None


def test_junit_names_the_boot_mode_so_merged_reports_stay_apart(tmp_path: Path) -> None:
    reports = {}
    for mode in ("pv", "pvh"):
        path = tmp_path / f"{mode}.xml"
        write_junit(path, MIXED, "h", 4.0, mode=mode, toolstack="xapi")
        reports[mode] = ET.parse(path).getroot()
    pvh = reports["pvh"]
    assert pvh.get("name") == "xen-test-vm smoke (pvh)"
    properties = {p.get("name"): p.get("value") for p in pvh.iter("property")}
    assert properties == {"mode": "pvh", "toolstack": "xapi"}
    classes = {
        mode: {(c.get("classname"), c.get("name")) for c in root.findall("testcase")}
        for mode, root in reports.items()
    }
    assert ("smoke.pvh." + MIXED[0].group, MIXED[0].name) in classes["pvh"]
    assert not classes["pv"] & classes["pvh"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_shows_error_rows_and_honours_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = _Terminal()
    table = LiveTable(coloured)
    for result in MIXED:
        table(result)
    table.summary(MIXED, 4.0)
    assert "\033[35mERROR" in coloured.getvalue()
    assert "1 passed, 1 failed, 1 errors, 1 skipped" in coloured.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    table = LiveTable(plain)
    for result in MIXED:
        table(result)
    assert "\033[" not in plain.getvalue() and "ERROR " in plain.getvalue()


def test_a_toolstack_operation_past_its_timeout_is_exit_4() -> None:
    started = time.monotonic()
    with pytest.raises(OperationTimeout, match=r"shutdown of 'vm' did not finish within 0\.2 s"):
        within(0.2, "shutdown of 'vm'", lambda: time.sleep(5))
    assert time.monotonic() - started < 2
    assert OperationTimeout.exit_code == ExitCode.TIMEOUT and int(ExitCode.TIMEOUT) == 4


def test_within_returns_the_result_and_passes_errors_on() -> None:
    assert within(5, "x", lambda: 42) == 42

    def refuse() -> Any:
        raise ToolstackError("VM_BAD_POWER_STATE", "halted")

    with pytest.raises(ToolstackError, match="VM_BAD_POWER_STATE"):
        within(5, "x", refuse)
