"""Which toolstack a host runs: the real probe script, run on this machine with fake commands.

`xe`, `xl` and the inventory are FAKES (empty scripts on PATH, a file under tmp_path); the probe
is the client's own, run by sh exactly as it runs on a host.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from xen_test_vm import cli, toolstack
from xen_test_vm.errors import ExitCode, ToolstackError
from xen_test_vm.remote import LocalHost
from xen_test_vm.toolstack import detect


@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with no xe/xl but the basics; the inventory and socket paths under tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(
        toolstack, "XAPI_INVENTORY", str(tmp_path / "xensource-inventory"), raising=False
    )
    monkeypatch.setattr(toolstack, "XAPI_SOCKET_PATH", str(tmp_path / "xapi"), raising=False)
    return tmp_path


def _command(fake: Path, name: str) -> None:
    path = fake / "bin" / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.mark.parametrize("mark", ["xe", "inventory"])
def test_a_xapi_host_whose_xapi_is_down_is_refused_not_taken_for_xl(
    fake_host: Path, mark: str
) -> None:
    _command(fake_host, "xl")
    if mark == "xe":
        _command(fake_host, "xe")
    else:
        (fake_host / "xensource-inventory").write_text("INSTALLATION_UUID='x'\n")
    with pytest.raises(ToolstackError) as info:
        detect(LocalHost())
    assert info.value.code == "XAPI_NOT_RUNNING"
    assert info.value.exit_code == ExitCode.FAILED
    assert "not falling back to xl" in str(info.value)


def test_xapi_when_its_socket_is_there_xl_when_nothing_says_xapi(fake_host: Path) -> None:
    _command(fake_host, "xl")
    assert detect(LocalHost()) == "xl"
    _command(fake_host, "xe")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(fake_host / "xapi"))
    try:
        assert detect(LocalHost()) == "xapi"
    finally:
        listener.close()


def test_the_cli_says_so_in_one_line_with_exit_1(
    fake_host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _command(fake_host, "xl")
    _command(fake_host, "xe")
    assert cli.main(["--host", "local", "status", "some-vm"]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "XAPI_NOT_RUNNING" in err and "xapi does not answer" in err
