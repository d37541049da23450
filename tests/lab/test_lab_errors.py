"""Lab failures a person can fix get one line on stderr, exit 1 and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from xen_test_lab import cli
from xen_test_lab.lab import LabHost
from xen_test_vm.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def _lab(args: list[str], env_updates: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "lab")
    env.update(env_updates)
    return subprocess.run(
        [sys.executable, "-m", "xen_test_lab.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lab: error: ")
    assert words in lines[0]


def test_missing_qemu(tmp_path: Path) -> None:
    result = _lab([], {"PATH": str(tmp_path)})
    _assert_one_line_error(result, "qemu-system-x86_64 not found")


def test_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _lab(["--port", str(port)], {})
    _assert_one_line_error(result, f"port {port} on 127.0.0.1 is in use")


def test_too_little_memory() -> None:
    result = _lab(["--memory", str(64 * 1024 * 1024)], {})
    _assert_one_line_error(result, "too little memory for the lab")


def test_failed_package_download(tmp_path: Path) -> None:
    apt_config = tmp_path / "apt.conf"
    # Nothing listens on port 9: every download is refused at once.
    apt_config.write_text(
        'Acquire::http::Proxy "http://127.0.0.1:9";\nAcquire::https::Proxy "http://127.0.0.1:9";\n'
    )
    env = {"XEN_TEST_VM_CACHE": str(tmp_path / "cache"), "APT_CONFIG": str(apt_config)}
    result = _lab(["--hypervisor", "debian"], env)
    _assert_one_line_error(result, "downloading Debian packages failed")


def test_failed_hypervisor_source_fetch(tmp_path: Path) -> None:
    """The shadow hypervisor is built from Debian's xen source: no network, one line."""
    apt_config = tmp_path / "apt.conf"
    apt_config.write_text('Acquire::http::Proxy "http://127.0.0.1:9";\n')
    env = {"XEN_TEST_VM_CACHE": str(tmp_path / "cache"), "APT_CONFIG": str(apt_config)}
    result = _lab(["--hypervisor", "shadow"], env)
    _assert_one_line_error(result, "cannot read Debian's source lists")
    assert "--hypervisor debian" in result.stderr


def test_stopping_no_lab_is_one_error_line(tmp_path: Path) -> None:
    # A cache of its own: a detached lab someone else runs is never seen, let alone stopped.
    result = _lab(["--stop"], {"XEN_TEST_VM_CACHE": str(tmp_path / "cache")})
    _assert_one_line_error(result, "no detached lab is running")


def test_an_interrupted_lab_command_is_one_error_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    # In-process: Ctrl-C arrives while the command runs (here, while stopping a lab).
    monkeypatch.setattr(cli, "_stop", interrupted)
    assert cli.lab_command(stop=True) == ExitCode.INTERRUPTED
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "lab: error: interrupted\n")


def test_a_qemu_that_went_away_by_itself_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exited = subprocess.Popen(["true"])  # exited and reaped: it stands in for QEMU
    exited.wait()
    host = LabHost(
        ssh_config=tmp_path / "ssh_config", port=1, run_dir=tmp_path, qemu_pid=exited.pid
    )
    assert cli._until_qemu_exits([host]) == 1
    assert capsys.readouterr().err == "lab: error: QEMU exited\n"
