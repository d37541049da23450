"""No QEMU outlives a test session: not after a failing test, Ctrl-C, or a killed runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
INNER_TEST = """
import faulthandler
import os
import signal
import time
from tests.conftest import lab_host  # the real session fixture under test

# SIGUSR1 writes every thread's stack to this file: where a session that does not end hangs.
_STACKS = open(os.environ["XTV_INNER_STACKS"], "w")
faulthandler.register(signal.SIGUSR1, file=_STACKS, all_threads=True)


def test_uses_the_lab_then_{how}(lab_host):
    assert lab_host.run("xl list").returncode == 0
    {action}
"""
ACTIONS = {
    "fails": 'raise AssertionError("deliberate failure")',
    "waits_to_be_interrupted": "time.sleep(600)",
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it no longer runs QEMU.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _start_inner_session(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    test_file = tmp_path / f"test_inner_{how}.py"
    test_file.write_text(INNER_TEST.format(how=how, action=ACTIONS[how]))
    pid_file = tmp_path / "qemu.pid"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / d) for d in ("", "lab", "client"))
    env["XEN_TEST_VM_LAB_PID_FILE"] = str(pid_file)
    env["XTV_INNER_STACKS"] = str(tmp_path / "stacks.txt")
    env.pop("XEN_TEST_VM_LAB", None)
    # A file, not a pipe: a process the session left behind (an ssh master) would hold a pipe
    # open, and reading it to the end would wait on that process, not on the session.
    with (tmp_path / "inner.log").open("w") as log:
        inner = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return inner, pid_file


def _wait_for_pid(pid_file: Path, inner: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text():
            return int(pid_file.read_text())
        if inner.poll() is not None:
            raise AssertionError(f"inner session ended early: {_inner_log(pid_file.parent)}")
        time.sleep(0.2)
    raise AssertionError("the inner session never booted its lab")


def _inner_log(tmp_path: Path) -> str:
    log = tmp_path / "inner.log"
    return log.read_text() if log.exists() else ""


def _output_within(inner: subprocess.Popen[str], seconds: float, tmp_path: Path) -> str:
    """The inner session's output once it ends; if it has not ended in time, its threads' stacks
    are taken, it is killed (its QEMU dies with it) and the test fails with both, so a hang
    shows where it hung."""
    try:
        inner.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        inner.send_signal(signal.SIGUSR1)
        time.sleep(1)
        inner.kill()
        inner.wait()
        stacks = tmp_path / "stacks.txt"
        where = stacks.read_text() if stacks.exists() else "(no stacks written)"
        pytest.fail(
            f"the inner session did not end within {seconds:g} s:\n{_inner_log(tmp_path)[-3000:]}"
            f"\nits threads:\n{where[-6000:]}"
        )
    return _inner_log(tmp_path)


def test_failing_test_leaves_no_qemu(tmp_path: Path) -> None:
    inner, pid_file = _start_inner_session(tmp_path, "fails")
    output = _output_within(inner, 600, tmp_path)
    assert inner.returncode == 1, output
    assert "deliberate failure" in output
    assert not _alive(int(pid_file.read_text()))


def test_interrupted_session_leaves_no_qemu(tmp_path: Path) -> None:
    inner, pid_file = _start_inner_session(tmp_path, "waits_to_be_interrupted")
    pid = _wait_for_pid(pid_file, inner)
    assert _alive(pid)
    time.sleep(1)  # let the test body start its wait; Ctrl-C during boot is a different case
    inner.send_signal(signal.SIGINT)
    output = _output_within(inner, 120, tmp_path)
    assert inner.returncode == 2, output  # pytest's exit code for an interrupted session
    assert not _alive(pid)


def test_killed_runner_leaves_no_qemu(tmp_path: Path) -> None:
    inner, pid_file = _start_inner_session(tmp_path, "waits_to_be_interrupted")
    pid = _wait_for_pid(pid_file, inner)
    inner.kill()  # no teardown runs: QEMU must die with its parent (PR_SET_PDEATHSIG)
    inner.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
