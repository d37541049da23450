"""One SSH runner: only client/xen_test_vm/ssh.py starts `ssh` here; and its close() is bounded
when a thread that outlived its deadline is still reconnecting. The ssh here is a stand-in
script (no sshd): it plays a login that never finishes."""

from __future__ import annotations

import ast
import os
import threading
import time
from pathlib import Path

import pytest
from xen_test_vm import ssh
from xen_test_vm.errors import ConnectionLost
from xen_test_vm.ssh import SSHHost

from tests.client.conftest import ROOT

RUNNER = ROOT / "client" / "xen_test_vm" / "ssh.py"
# Everything that ships: the client, the lab, the release tool and the tasks.
SHIPPED = [
    *sorted((ROOT / "client").rglob("*.py")),
    *sorted((ROOT / "lab").rglob("*.py")),
    *sorted((ROOT / "release").rglob("*.py")),
    ROOT / "tasks.py",
]
# The stand-in's login (`ssh ... true`) would take this long; close() must not wait for it.
STALL = 60


def _ssh_argvs(source: str) -> list[int]:
    """Lines of list or tuple displays that start with "ssh": an ssh command line being built.

    One passed straight to shell_command() is text for a remote shell (dom0's own ssh, which xl
    migrate uses), not a command this machine runs.
    """
    tree = ast.parse(source)
    quoted = {
        id(call.args[0])
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and getattr(call.func, "id", getattr(call.func, "attr", None)) == "shell_command"
        and call.args
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.List | ast.Tuple)
        and node.elts
        and isinstance(node.elts[0], ast.Constant)
        and node.elts[0].value == "ssh"
        and id(node) not in quoted
    ]


def test_the_detector_finds_an_ssh_command_line() -> None:
    assert _ssh_argvs('subprocess.run(["ssh", "-F", cfg, "xen-lab", "-O", "exit"])') == [1]
    assert _ssh_argvs('x = 1\nargv = ("ssh", host)') == [2]
    assert _ssh_argvs('run(["sh", "-c", shell_command(["ssh", "--", d, c])])') == []


def test_no_module_but_the_runner_builds_an_ssh_command_line() -> None:
    assert RUNNER in SHIPPED and len(SHIPPED) > 20
    found = {
        str(path.relative_to(ROOT)): lines
        for path in SHIPPED
        if path != RUNNER and (lines := _ssh_argvs(path.read_text()))
    }
    assert found == {}


def _stalling_ssh(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in ssh whose login never ends (it records its pid); control commands succeed."""
    pid_file = tmp_path / "login.pid"
    script = tmp_path / "ssh"
    script.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        f'[ "$last" = true ] && {{ echo $$ > {pid_file}; exec sleep {STALL}; }}\n'
        "exit 0\n"
    )
    script.chmod(0o755)
    return script, pid_file


def _wait_for(path: Path) -> int:
    for _ in range(600):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_close_ends_a_reconnect_that_holds_the_lock(tmp_path: Path) -> None:
    fake, pid_file = _stalling_ssh(tmp_path)
    host = SSHHost("xen1", ssh_binary=str(fake))
    errors: list[BaseException] = []

    def reconnect() -> None:
        try:
            host.connect(timeout=STALL * 2)
        except BaseException as exc:  # the thread's outcome is what the test looks at
            errors.append(exc)

    background = threading.Thread(target=reconnect, daemon=True)
    background.start()
    login = _wait_for(pid_file)
    closer = threading.Thread(target=host.close, daemon=True)
    closer.start()
    closer.join(STALL / 2)
    assert not closer.is_alive()
    background.join(STALL / 2)
    assert not background.is_alive()
    assert [type(e) for e in errors] == [ConnectionLost] and "closed" in str(errors[0])
    with pytest.raises(ProcessLookupError):  # the stalled login was ended, not left behind
        os.kill(login, 0)
    assert not host.control_path.parent.exists()
    with pytest.raises(ConnectionLost):  # a closed connection does not come back
        host.connect()


def test_close_does_not_wait_for_the_lock_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever holds the lock (here: a thread that never lets go), close() finishes."""
    monkeypatch.setattr(ssh, "CLOSE_LOCK_WAIT", 0.2)
    fake, _ = _stalling_ssh(tmp_path)
    host = SSHHost("xen1", ssh_binary=str(fake))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with host._lock:
            held.set()
            release.wait(STALL)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait(STALL)
    closer = threading.Thread(target=host.close, daemon=True)
    closer.start()
    closer.join(STALL / 2)
    try:
        assert not closer.is_alive()
        assert not host.control_path.parent.exists()
    finally:
        release.set()
        holder.join(STALL)
