"""Guests' console logs on XAPI hosts, against a FAKE xenstore tree and a recording host (no
XAPI, no Xen: tests/client/test_client_xapi_lab.py runs them on the emulator)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import cast

from xen_test_vm.remote import CommandResult
from xen_test_vm.report import LiveTable, as_json, write_junit
from xen_test_vm.smoke import FAIL, PASS, Result
from xen_test_vm.xapi import CONSOLE_HEAD, CONSOLE_TAIL, XapiConsoles, console_excerpt
from xen_test_vm.xenstore import Xenstore

from tests.client.client_fakes import RecordingHost

BANNER = "xen-test-vm 1.1.0 (revision abc) mode pvh domid 7 memory 16384 KiB"


class TreeXenstore:
    """A FAKE xenstore: a write creates every missing ancestor, a remove takes the subtree."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = dict(data)

    def read(self, path: str) -> str | None:
        return self.data.get(path)

    def write(self, path: str, value: str) -> None:
        parts = path.split("/")
        for end in range(2, len(parts)):
            self.data.setdefault("/".join(parts[:end]), "")
        self.data[path] = value

    def remove(self, path: str) -> None:
        for key in [k for k in self.data if k == path or k.startswith(path + "/")]:
            del self.data[key]


def consoles(data: dict[str, str], host: RecordingHost) -> tuple[TreeXenstore, XapiConsoles]:
    tree = TreeXenstore(data)
    return tree, XapiConsoles(host, cast(Xenstore, tree))


def test_logging_is_switched_on_for_the_run_and_the_tree_put_back(
    recording_host: RecordingHost,
) -> None:
    before = {"/local": "", "/local/domain": ""}
    recording_host.responder = lambda argv, _: CommandResult(argv, 0, f"{BANNER}\nready\n", "")
    tree, capture = consoles(before, recording_host)
    assert tree.data["/local/logconsole/@"] == "/tmp/console.%d"
    assert capture.lines(7) == [BANNER, "ready"]
    assert recording_host.calls[-1][-1] == "/tmp/console.7"
    assert capture.undo_commands() == [["xenstore-rm", "/local/logconsole"]]
    capture.close([7, 9])
    assert tree.data == before
    assert recording_host.calls[-1] == ["rm", "-f", "--", "/tmp/console.7", "/tmp/console.9"]


def test_a_value_without_a_domid_is_restored(recording_host: RecordingHost) -> None:
    before = {"/local": "", "/local/logconsole": "", "/local/logconsole/@": "off"}
    tree, capture = consoles(before, recording_host)
    assert tree.data["/local/logconsole/@"] == "/tmp/console.%d"
    assert capture.undo_commands() == [["xenstore-write", "/local/logconsole/@", "off"]]
    capture.close([])
    assert tree.data == before


def test_a_host_that_already_logs_consoles_keeps_its_setting_and_files(
    recording_host: RecordingHost,
) -> None:
    before = {"/local": "", "/local/logconsole": "", "/local/logconsole/@": "/var/log/c.%d"}
    tree, capture = consoles(before, recording_host)
    capture.lines(7)
    assert recording_host.calls[-1][-1] == "/var/log/c.7"
    assert capture.undo_commands() == []
    capture.close([7])
    assert tree.data == before
    assert all(call[0] != "rm" for call in recording_host.calls)


def test_no_log_gives_no_lines(recording_host: RecordingHost) -> None:
    recording_host.responder = lambda argv, _: CommandResult(argv, 1, "", "No such file")
    _, capture = consoles({}, recording_host)
    assert capture.lines(3) == []


def test_a_long_console_keeps_its_first_and_last_lines() -> None:
    lines = [BANNER, *(f"domain 7 tick {n}" for n in range(1, 100))]
    excerpt = console_excerpt("\n".join(lines))
    assert excerpt[:CONSOLE_HEAD] == lines[:CONSOLE_HEAD]
    assert excerpt[CONSOLE_HEAD] == f"[... {100 - CONSOLE_HEAD - CONSOLE_TAIL} lines ...]"
    assert excerpt[CONSOLE_HEAD + 1 :] == lines[-CONSOLE_TAIL:]
    assert console_excerpt("a\nb") == ["a", "b"]


def test_a_failed_rows_console_goes_into_the_table_json_and_junit(tmp_path: Path) -> None:
    results = [
        Result("now-crash", "guest", "crashed", FAIL, "halted", console={7: [BANNER, "ready"]}),
        Result("boot-status", "guest", "ready", PASS),
    ]
    table = io.StringIO()
    for result in results:
        LiveTable(table)(result)
    assert f"    | --- console of domain 7 ---\n    | {BANNER}\n    | ready\n" in table.getvalue()
    assert table.getvalue().count("    | ") == 3
    rows = as_json(results, "h", "xapi", 1.0, "pvh")["scenarios"]
    assert [r["console"] for r in rows] == [{"7": [BANNER, "ready"]}, {}]
    junit = tmp_path / "smoke.xml"
    write_junit(junit, results, "h", 1.0)
    failed, passed = ET.parse(junit).getroot()
    assert failed.findtext("system-out") == f"--- console of domain 7 ---\n{BANNER}\nready\n"
    assert passed.find("system-out") is None
