"""The client against the XAPI EMULATOR in the lab's dom0 (lab/xapi_emulator): not XAPI.

No real XenServer or XCP-ng was available. The emulator serves XenAPI on /var/lib/xcp/xapi and
drives real domains on the lab's real Xen; where a guest can tell, it follows xenopsd's sources.
The whole matrix runs once (issue 11 item 2) and the tests read its rows (`-k xapi`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_lab import xapi_lab
from xen_test_lab.lab import LabHost
from xen_test_vm import scenarios
from xen_test_vm.errors import ExitCode
from xen_test_vm.report import as_json, write_junit
from xen_test_vm.session import ConnectOptions, Session
from xen_test_vm.smoke import Result, run_smoke, select

from tests.client.test_client_lab import cli, leftovers

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def xapi_host(lab_host: LabHost) -> Iterator[LabHost]:
    """The lab's dom0 as an emulated XAPI host; a plain xl host again afterwards."""
    xapi_lab.install(lab_host)
    xapi_lab.start(lab_host)
    try:
        yield lab_host
    finally:
        xapi_lab.uninstall(lab_host)


@dataclasses.dataclass(frozen=True)
class MatrixRun:
    """The whole smoke matrix, run once through the CLI against the emulator."""

    report: dict[str, object]
    outcome: dict[str, tuple[str, str]]
    seconds: float
    junit: Path


@pytest.fixture(scope="module")
def xapi_matrix(
    xapi_host: LabHost, client_kernel: Path, tmp_path_factory: pytest.TempPathFactory
) -> MatrixRun:
    """Issue 11 item 2: every row the matrix has for XAPI, through the real XenAPI library over
    the forwarded unix socket, SSH included; one run, which the tests below read."""
    junit = tmp_path_factory.mktemp("xapi-matrix") / "smoke.xml"
    started = time.monotonic()
    proc = cli(
        xapi_host, "smoke", "--kernel", str(client_kernel), "--json", "--junit", str(junit),
        timeout=1200,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert proc.stdout.startswith("{"), (
        proc.stdout[-3000:] + proc.stderr[-2000:] + xapi_lab.log(xapi_host)[-2000:]
    )
    report = json.loads(proc.stdout)
    outcome = {s["name"]: (s["outcome"], s["detail"]) for s in report["scenarios"]}
    print(f"\nsmoke matrix on the XAPI emulator: {seconds:.1f} s ({len(outcome)} scenarios)")
    return MatrixRun(report, outcome, seconds, junit)


def test_xapi_whole_matrix_passes_on_the_emulator(
    xapi_host: LabHost, xapi_matrix: MatrixRun
) -> None:
    report = xapi_matrix.report
    assert (report["toolstack"], report["mode"]) == ("xapi", "pvh")
    wanted = {s.name for s in select(scenarios.ALL, "xapi", [], [])}
    assert set(xapi_matrix.outcome) == wanted
    # One host: the row that needs another pool member says so (test_client_xapi_pool_lab).
    outcome = dict(xapi_matrix.outcome)
    elsewhere = outcome.pop("migrate-to-destination")
    assert elsewhere == ("skip", "no --destination given (another host or a pool member)")
    failed = {n: o for n, o in outcome.items() if o[0] != "pass"}
    assert failed == {}, failed
    assert report["exit_code"] == 0
    assert xapi_matrix.junit.read_text().count("<testcase") == len(wanted)
    assert leftovers(xapi_host, "xtvm-") == []


def test_xapi_reboot_rows_on_the_emulator(xapi_matrix: MatrixRun) -> None:
    """armed-reboot-on-poweroff: success and Halted; reboots followed through event.from."""
    outcome = xapi_matrix.outcome
    assert outcome["armed-reboot-on-poweroff"] == ("pass", "power state halted")
    assert outcome["clean-reboot"][0] == outcome["request-reboot"][0] == "pass"


def test_xapi_pressure_rows_on_the_emulator(xapi_matrix: MatrixRun) -> None:
    """Section 8 through XAPI: a guest holding 400 nodes and 40 watches is shut down cleanly
    (its home removed with the domain) and suspended and resumed (it holds them again)."""
    outcome = xapi_matrix.outcome
    assert outcome["pressure-clean-shutdown"] == (
        "pass",
        "power state halted; home with 400 nodes removed",
    )
    state, detail = outcome["pressure-suspend-resume"]
    assert state == "pass" and detail.endswith("again 400 nodes, 40 watches"), detail


def test_xapi_timed_rows_on_the_emulator(xapi_matrix: MatrixRun) -> None:
    """Section 7 against xenopsd's rules, with its real 60 s acknowledgement timeout: acks 5 s
    late, 5 s before and 5 s after it; a hung guest's hard shutdown still ends Halted."""
    outcome = xapi_matrix.outcome
    assert outcome["late-ack-inside-timeout"][1].startswith("power state halted; acknowledged")
    assert outcome["late-ack-just-inside-timeout"] == (
        "pass",
        "acknowledged after 55 s: accepted, power state halted",
    )
    assert outcome["late-ack-past-timeout"] == (
        "pass",
        "VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT at the timeout, then the guest acknowledged and "
        "powered off anyway: power state halted",
    )
    assert outcome["hung-guest-hard-shutdown"] == (
        "pass",
        "silent for 3 s, then destroyed: power state halted",
    )


LUNA_ROSSA_ON_XAPI = {
    "luna-rossa-suspend": "power state suspended",
    "luna-rossa-clean-shutdown": "power state halted",
    "luna-rossa-hard-shutdown": "power state halted",
    "luna-rossa-paused-hard-shutdown": "paused, then power state halted",
    "luna-rossa-suspended-hard-shutdown": "suspended, then power state halted",
}


def test_xapi_luna_rossa_rows_on_the_emulator(xapi_matrix: MatrixRun) -> None:
    """luna-rossa's positive suite with its message (no chmod), and its ack "bogus" with
    xenopsd's real timeouts: 60 s for a clean shutdown, 30 s for a suspend; both end Halted."""
    outcome = {n: o for n, o in xapi_matrix.outcome.items() if n.startswith("luna-rossa")}
    assert len(outcome) == 9 and {o for o, _ in outcome.values()} == {"pass"}, outcome
    for name, detail in LUNA_ROSSA_ON_XAPI.items():
        assert outcome[name][1] == detail, name
    resumed = r"domid \d+ -> \d+, resumes 1"
    assert re.fullmatch(
        f"running, {resumed}; clean shutdown: power state halted",
        outcome["luna-rossa-suspended-resume"][1],
    )
    assert re.fullmatch(
        f"paused, unpaused: running, {resumed}", outcome["luna-rossa-suspended-resume-paused"][1]
    )
    for name, code, timeout, action in (
        ("luna-rossa-bogus-clean-shutdown", "VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT", 60, "poweroff"),
        ("luna-rossa-bogus-suspend", "VM_FAILED_SUSPEND_ACKNOWLEDGMENT", 30, "suspend"),
    ):
        found = re.fullmatch(
            f"{code} after (\\d+) s; the guest did its {action} anyway: power state halted",
            outcome[name][1],
        )
        assert found and timeout <= int(found.group(1)) <= timeout + 10, outcome[name]


def test_xapi_re_install_on_a_running_vm(xapi_host: LabHost, client_kernel: Path) -> None:
    name = "xtvm-xapi-reinstall"
    kernel = ["--kernel", str(client_kernel), "--name", name]
    assert cli(xapi_host, "install", *kernel, "--memory", "16", "--start").returncode == 0
    try:
        refused = cli(xapi_host, "install", *kernel, "--memory", "24")
        assert refused.returncode == ExitCode.FAILED, refused.stderr
        assert "VM_BAD_POWER_STATE" in refused.stderr and "nothing was changed" in refused.stderr
        again = cli(xapi_host, "install", *kernel, "--memory", "16", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["domid"] is not None
    finally:
        assert cli(xapi_host, "destroy", name).returncode == 0


def test_xapi_down_is_refused_not_taken_for_xl(xapi_host: LabHost) -> None:
    xapi_lab.stop(xapi_host)  # xe stays: a XAPI host whose xapi is down
    try:
        proc = cli(xapi_host, "status", "any-vm")
        assert proc.returncode == ExitCode.FAILED
        assert proc.stderr.count("\n") == 1 and "XAPI_NOT_RUNNING" in proc.stderr
    finally:
        xapi_lab.start(xapi_host)


def test_xapi_scale_through_the_emulator(xapi_host: LabHost, client_kernel: Path) -> None:
    """The load generator through XenAPI: VM.create/start/clean_shutdown/destroy per VM."""
    proc = cli(
        xapi_host, "scale", "--kernel", str(client_kernel), "--count", "4", "--concurrency",
        "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert (report["toolstack"], report["mode"]) == ("xapi", "pvh")
    assert (report["ready"], report["shut_down"], report["failed"]) == (4, 4, 0)
    prefix = f"xtvm-{report['run_id']}"
    assert prefix not in xapi_host.run("xe vm-list").stdout
    assert leftovers(xapi_host, prefix) == []


def test_xapi_crash_checkpoint_now_suspend_and_console_logs(
    xapi_host: LabHost, client_kernel: Path, tmp_path: Path
) -> None:
    """A crash is told from a poweroff (actions_after_crash preserve: Paused); checkpoint and
    now-suspend run on XAPI; a row that fails on purpose (the guest powers off, the row wants a
    crash) carries its guest's console in JSON and JUnit; /local/logconsole is put back."""
    rows = select(scenarios.ALL, "xapi", ["now-crash", "now-suspend", "checkpoint"], [])
    assert {r.name for r in rows} == {"now-crash", "now-suspend", "checkpoint"}
    poweroff_as_crash = dataclasses.replace(
        scenarios._now_stops("poweroff", "crash"), name="now-poweroff-wanting-a-crash"
    )
    options = ConnectOptions(host=xapi_host.ssh_alias, ssh_config=xapi_host.ssh_config)
    with Session(options) as session:
        results = run_smoke(session, str(client_kernel), [*rows, poweroff_as_crash], lambda r: None)
    by_name: dict[str, Result] = {r.name: r for r in results}
    passed = {n: r.detail for n, r in by_name.items() if r.outcome == "pass"}
    assert set(passed) == {"now-crash", "now-suspend", "checkpoint"}, results
    assert passed["now-crash"] == "power state paused (crashed, preserved)"
    assert passed["now-suspend"] == "power state halted"
    assert passed["checkpoint"].endswith(", resumes 1; then a clean shutdown: power state halted")
    failed = by_name["now-poweroff-wanting-a-crash"]
    assert (failed.outcome, failed.detail) == ("fail", "power state halted: not a crash")
    # Its one domain's console: the banner, ready, then the poweroff it was told to do.
    [(domid, lines)] = failed.console.items()
    assert lines[0].startswith("xen-test-vm ") and f" domid {domid} " in lines[0], lines
    assert "ready" in lines
    report = as_json(results, session.host.name, "xapi", 1.0, "pvh")
    row = next(r for r in report["scenarios"] if r["name"] == failed.name)
    assert row["console"] == {str(domid): lines}
    assert all(r["console"] == {} for r in report["scenarios"] if r["outcome"] == "pass")
    junit = tmp_path / "smoke.xml"
    write_junit(junit, results, "lab", 1.0)
    case = next(c for c in ET.parse(junit).getroot() if c.get("name") == failed.name)
    assert lines[0] in (case.findtext("system-out") or "")
    # Console logging is as before the run (the key did not exist), its logs are gone.
    assert xapi_host.run("xenstore-read /local/logconsole", check=False).returncode != 0
    assert xapi_host.run(f"ls /tmp/console.{domid}", check=False).returncode != 0
    assert leftovers(xapi_host, "xtvm-") == []
