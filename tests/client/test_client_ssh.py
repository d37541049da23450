"""The SSH layer: destination validation, ssh command line, ssh's failures as one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from xen_test_vm.errors import ConnectionLost, HostKeyError, SSHError, UsageError
from xen_test_vm.ssh import SSHHost, classify_ssh_failure, validate_destination


@pytest.mark.parametrize(
    "good", ["host", "root@xen1.example.org", "xen-lab", "10.0.0.1", "[fe80::1]", "u_1@h"]
)
def test_valid_destinations(good: str) -> None:
    assert validate_destination(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "-oProxyCommand=touch /tmp/x", "host name", "host;rm", "h\nx", "$(x)", "@host", "a@-b"],
)
def test_destinations_that_ssh_could_misread_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        validate_destination(bad)


def test_host_keys_are_verified_unless_explicitly_accepting_new_ones(tmp_path: Path) -> None:
    hosts = [SSHHost("xen1"), SSHHost("xen1", accept_new_host_key=True)]
    strict, lenient = (h.ssh_argv() for h in hosts)
    for host in hosts:
        host.close()
    assert "StrictHostKeyChecking=yes" in strict
    assert "StrictHostKeyChecking=accept-new" in lenient
    assert not any("StrictHostKeyChecking=no" in a for a in strict + lenient)


def test_command_line_multiplexes_and_ends_options_before_the_destination(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    config.write_text("Host x\n")
    host = SSHHost("xen1", ssh_config=config)
    argv = host.ssh_argv()
    assert argv[:3] == ["ssh", "-F", str(config)]
    assert argv[-2:] == ["--", "xen1"]
    assert "ControlMaster=auto" in argv
    assert f"ControlPath={host.control_path}" in argv
    assert "BatchMode=yes" in argv
    host.close()
    assert not host.control_path.parent.exists()


def test_a_missing_ssh_config_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        SSHHost("xen1", ssh_config=tmp_path / "nope")


@pytest.mark.parametrize(
    ("stderr", "kind", "needle"),
    [
        ("Host key verification failed.\r\n", HostKeyError, "--accept-new-host-key"),
        (
            "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
            "Host key verification failed.",
            HostKeyError,
            "CHANGED",
        ),
        (
            "ssh: Could not resolve hostname nowhere: Name or service not known\r\n",
            SSHError,
            "cannot reach",
        ),
        (
            "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n",
            SSHError,
            "Connection refused",
        ),
        ("root@h: Permission denied (publickey).\r\n", SSHError, "cannot log in"),
        ("Connection closed by 127.0.0.1 port 2222\r\n", ConnectionLost, "lost"),
    ],
)
def test_ssh_failures_become_one_line_errors(
    stderr: str, kind: type[Exception], needle: str
) -> None:
    error = classify_ssh_failure("h", stderr)
    assert isinstance(error, kind)
    assert needle in str(error)
    assert "\n" not in str(error)


def test_a_remote_command_that_exits_255_quietly_is_not_taken_for_ssh() -> None:
    assert classify_ssh_failure("h", "some tool: bad thing\n") is None
