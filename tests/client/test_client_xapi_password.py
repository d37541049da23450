"""The XAPI password the user gives (a file, the environment, the prompt) is the one XAPI's
session.login_with_password receives. Against the FAKE XAPI host of tests/client/fake_xapi_host.py
(a stand-in ssh and the FAKE XAPI of tests/client/xapi_fake.py): no Xen, xapi or sshd."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import pytest
from xen_test_vm import cli
from xen_test_vm.errors import ExitCode

from tests.client.fake_xapi_host import HOST, FakeHost

LOGIN_REST = ("1.0", "xen-test-vm")


def test_the_fake_host_serves_a_plain_status(xapi_host: FakeHost) -> None:
    xapi_host.model.add_vm("vm")
    proc, _ = xapi_host.run("--json", "status", "vm")
    assert proc.returncode == 0, proc.stderr
    assert '"power_state": "halted"' in proc.stdout and '"toolstack": "xapi"' in proc.stdout
    assert xapi_host.model.logins() == [("root", "", *LOGIN_REST)]  # root over dom0's socket


def test_the_password_from_a_file_reaches_xapis_login(xapi_host: FakeHost, tmp_path: Path) -> None:
    secret = tmp_path / "xapi-password"
    secret.write_text("s3cret file\n")
    xapi_host.model.add_vm("vm")
    proc, _ = xapi_host.run(
        "--xapi-password-file", str(secret), "status", "vm", XEN_TEST_VM_XAPI_PASSWORD="not this"
    )
    assert proc.returncode == 0, proc.stderr
    assert xapi_host.model.logins() == [("root", "s3cret file", *LOGIN_REST)]


def test_the_password_from_the_environment_reaches_xapis_login(xapi_host: FakeHost) -> None:
    xapi_host.model.add_vm("vm")
    proc, _ = xapi_host.run("status", "vm", XEN_TEST_VM_XAPI_PASSWORD="from env")
    assert proc.returncode == 0, proc.stderr
    assert xapi_host.model.logins() == [("root", "from env", *LOGIN_REST)]


def test_an_empty_password_file_is_not_replaced_by_the_environment(
    xapi_host: FakeHost, tmp_path: Path
) -> None:
    """The file was given: it is the password, even empty (the environment is the fallback)."""
    empty = tmp_path / "empty"
    empty.write_text("")
    xapi_host.model.add_vm("vm")
    proc, _ = xapi_host.run(
        "--xapi-password-file", str(empty), "status", "vm", XEN_TEST_VM_XAPI_PASSWORD="from env"
    )
    assert proc.returncode == 0, proc.stderr
    assert xapi_host.model.logins() == [("root", "", *LOGIN_REST)]


def test_the_password_typed_at_the_prompt_reaches_xapis_login(
    xapi_host: FakeHost, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, as getpass needs a terminal: only the prompt itself is stood in for."""
    prompts: list[str] = []

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return "typed pw"

    xapi_host.model.add_vm("vm")
    for name, value in xapi_host.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XEN_TEST_VM_XAPI_PASSWORD", "not this")
    monkeypatch.setattr(getpass, "getpass", typed)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    code = cli.run(["--host", HOST, "--ask-xapi-password", "status", "vm"])
    assert code == ExitCode.OK
    assert prompts == ["XAPI password for root: "]
    assert xapi_host.model.logins() == [("root", "typed pw", *LOGIN_REST)]
    assert "halted" in capsys.readouterr().out
