"""Bad input gives one line on stderr and a non-zero exit, never a traceback (no host needed)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.client.conftest import one_error_line, xen_test_vm


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    line = one_error_line(proc, code)
    assert needle in line, line


def test_missing_kernel_file(tmp_path: Path) -> None:
    proc = xen_test_vm("install", "--host", "xen1", "--kernel", str(tmp_path / "nope.gz"))
    assert_one_line_error(proc, 2, "does not exist")


def test_a_file_that_is_not_a_kernel(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gz"
    junk.write_text("not a kernel")
    assert_one_line_error(
        xen_test_vm("smoke", "--host", "xen1", "--kernel", str(junk)), 2, "neither"
    )


@pytest.mark.parametrize(
    "host", ["-oProxyCommand=touch /tmp/xtvm-pwned", "two words", "semi;colon"]
)
def test_bad_host_names(host: str) -> None:
    assert_one_line_error(xen_test_vm("status", f"--host={host}", "vm"), 2, "invalid host name")
    assert not Path("/tmp/xtvm-pwned").exists()


def test_no_host() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "XEN_TEST_VM_HOST"}
    assert_one_line_error(xen_test_vm("status", "vm", env=env), 2, "no host given")


def test_unresolvable_host() -> None:
    assert_one_line_error(
        xen_test_vm("status", "--host", "no-such-host.invalid", "vm"), 3, "cannot reach"
    )


def test_unreachable_host(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host closed\n  HostName 127.0.0.1\n  Port {port}\n")
    proc = xen_test_vm("status", "--host", "closed", "--ssh-config", str(config), "vm")
    assert_one_line_error(proc, 3, "Connection refused")


def test_missing_ssh_config(tmp_path: Path) -> None:
    proc = xen_test_vm("status", "--host", "xen1", "--ssh-config", str(tmp_path / "none"), "vm")
    assert_one_line_error(proc, 2, "does not exist")


def test_scenario_list_needs_no_host() -> None:
    proc = xen_test_vm("smoke", "--list", "--json")
    assert proc.returncode == 0
    assert '"clean-shutdown-no-ack"' in proc.stdout
