"""Pure logic: protocol messages, scenario selection, reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from xen_test_vm.protocol import Instruction, guest_writable
from xen_test_vm.report import as_json, write_junit
from xen_test_vm.scenarios import ALL
from xen_test_vm.smoke import FAIL, PASS, SKIP, Result, Scenario, select
from xen_test_vm.toolstack import version_tuple


def test_instructions_serialise_compactly() -> None:
    assert (
        Instruction("onshutdown", "ignore", "none").to_json()
        == '{"when":"onshutdown","ack":"none","action":"ignore"}'
    )
    assert Instruction("now", "crash").to_json() == '{"when":"now","action":"crash"}'


@pytest.mark.parametrize(
    ("when", "action", "ack"),
    [("later", "ignore", "ok"), ("now", "explode", None), ("onshutdown", "ignore", None)],
)
def test_invalid_instructions_are_refused_before_sending(
    when: str, action: str, ack: str | None
) -> None:
    with pytest.raises(ValueError):
        Instruction(when, action, ack)


def test_armed_json_is_compared_by_meaning() -> None:
    instruction = Instruction("onshutdown", "reboot", "ok")
    assert instruction.same_as('{"action":"reboot","ack":"ok","when":"onshutdown"}')
    assert not instruction.same_as('{"action":"reboot","ack":"none","when":"onshutdown"}')
    assert not instruction.same_as("")
    assert not instruction.same_as("[]")


def test_timed_fields_follow_action_in_the_kernels_canonical_order() -> None:
    timed = Instruction("onshutdown", "poweroff", "ok", hang_ms="forever", action_delay_ms=7)
    assert timed.to_json() == (
        '{"when":"onshutdown","ack":"ok","action":"poweroff","hang_ms":"forever",'
        '"action_delay_ms":7}'
    )
    assert timed.same_as(timed.to_json())
    assert not Instruction("onshutdown", "poweroff", "ok").same_as(timed.to_json())
    assert Instruction("now", "ignore", ack_delay_ms=0).to_json() == (
        '{"when":"now","action":"ignore"}'
    )


@pytest.mark.parametrize(
    "fields",
    [{"hang_ms": -1}, {"ack_delay_ms": 3_600_001}, {"hang_ms": "never"}, {"action_delay_ms": 1.5}],
)
def test_timed_fields_out_of_range_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be 0 to 3600000 ms"):
        Instruction("now", "ignore", **fields)  # type: ignore[arg-type]


def test_pressure_fields_are_written_when_asked_zero_included() -> None:
    asked = Instruction("now", "ignore", xs_nodes=200, xs_watches=0)
    assert asked.to_json() == '{"when":"now","action":"ignore","xs_nodes":200,"xs_watches":0}'
    assert "xs_" not in Instruction("now", "ignore").to_json()


@pytest.mark.parametrize("fields", [{"xs_nodes": -1}, {"xs_watches": 100_001}, {"xs_nodes": 1.5}])
def test_pressure_fields_out_of_range_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be 0 to 100000"):
        Instruction("now", "ignore", **fields)  # type: ignore[arg-type]


def test_balloon_percent_is_written_when_asked_zero_included() -> None:
    asked = Instruction("onshutdown", "ignore", "ok", xs_nodes=3, balloon_percent=0)
    assert asked.to_json() == (
        '{"when":"onshutdown","ack":"ok","action":"ignore","xs_nodes":3,"balloon_percent":0}'
    )
    assert "balloon" not in Instruction("now", "ignore").to_json()
    assert (
        Instruction("now", "ignore", balloon_percent=100)
        .to_json()
        .endswith(',"balloon_percent":100}')
    )


@pytest.mark.parametrize("percent", [-1, 101, 50.5, "50"])
def test_balloon_percent_out_of_range_is_refused(percent: object) -> None:
    with pytest.raises(ValueError, match="balloon_percent must be 0 to 100"):
        Instruction("now", "ignore", balloon_percent=percent)  # type: ignore[arg-type]


def test_control_keys_are_owned_by_dom0_and_read_write_for_the_guest() -> None:
    assert guest_writable(7) == ["n0", "b7"]


def test_every_protocol_section_has_scenarios() -> None:
    names = {s.name for s in ALL}
    assert len(names) == len(ALL)
    for needed in (
        "bogus-messages",
        "ack-none",
        "ack-delete",
        "ack-string",
        "one-shot",
        "suspend-resume",
    ):
        assert needed in names
    assert {s.group for s in ALL} == {"guest", "toolstack"}
    assert [s.name for s in ALL if s.background] == [
        "clean-shutdown-no-ack",
        "late-ack-just-inside-timeout",
        "late-ack-past-timeout",
        "suspend-no-ack",
        "luna-rossa-bogus-clean-shutdown",
        "luna-rossa-bogus-suspend",
    ]
    # luna-rossa's default "positive" suite (7 cases) and its ack "bogus" (issue 11 item 5).
    assert [s.name for s in select(ALL, None, ["luna-rossa*"], [])] == [
        "luna-rossa-suspend",
        "luna-rossa-clean-shutdown",
        "luna-rossa-hard-shutdown",
        "luna-rossa-paused-hard-shutdown",
        "luna-rossa-suspended-resume",
        "luna-rossa-suspended-resume-paused",
        "luna-rossa-suspended-hard-shutdown",
        "luna-rossa-bogus-clean-shutdown",
        "luna-rossa-bogus-suspend",
    ]
    # Section 8 (issue 14): what a guest holding many nodes and watches asks of a toolstack.
    assert [s.name for s in select(ALL, None, ["pressure-*"], [])] == [
        "pressure-clean-shutdown",
        "pressure-suspend-resume",
    ]


def test_only_and_skip_select_by_name_group_and_prefix() -> None:
    assert {s.name for s in select(ALL, "xl", ["toolstack"], ["checkpoint"])} == {
        s.name for s in ALL if s.group == "toolstack" and s.name != "checkpoint"
    }
    assert [s.name for s in select(ALL, "xl", ["ack-*"], [])] == [
        "ack-none",
        "ack-delete",
        "ack-string",
    ]
    # Both run on XAPI too (issue 11); a row for one toolstack only is left out on the other.
    assert {"checkpoint", "now-suspend"} <= {s.name for s in select(ALL, "xapi", [], [])}
    only_xl = Scenario("xl-only", "guest", "", lambda ctx: None, frozenset({"xl"}))
    assert select([only_xl], "xapi", [], []) == [] and select([only_xl], "xl", [], []) == [only_xl]


def test_version_tuples() -> None:
    assert version_tuple("24.20.0") == (24, 20, 0)
    assert version_tuple("v1.249-rc1") == (1, 249)
    assert version_tuple("abc") == ()


RESULTS = [
    Result("a", "guest", "x", PASS, "", 1.5),
    Result("b", "toolstack", "y", FAIL, "boom <&>", 2.0),
    Result("c", "toolstack", "z", SKIP, "no shadow", 0.1),
]


def test_json_report() -> None:
    report = as_json(RESULTS, "h", "xl", 3.6, "pvh")
    assert (report["passed"], report["failed"], report["skipped"]) == (1, 1, 1)
    assert (report["toolstack"], report["mode"]) == ("xl", "pvh")
    assert json.loads(json.dumps(report))["scenarios"][1]["detail"] == "boom <&>"


def test_junit_report(tmp_path: Path) -> None:
    path = tmp_path / "smoke.xml"
    write_junit(path, RESULTS, "h", 3.6)
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["a", "b", "c"]
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("message") == "boom <&>"
    assert cases[2].find("skipped") is not None
