"""--timeout bounds the whole command, connecting included, wherever it is accepted (smoke
refuses it: tests/client/test_client_cli.py). Through the installed console script against the
FAKE XAPI host of tests/client/fake_xapi_host.py (a stand-in ssh and the FAKE XAPI of
tests/client/xapi_fake.py, whose named calls stall as a hung xapi's would): no Xen, xapi or sshd.
Each stalled call would hold on for 60 s; every command here must give up long before."""

from __future__ import annotations

import re
import threading

import pytest
from xen_test_vm.errors import ExitCode, OperationTimeout
from xen_test_vm.timeouts import GUEST_TIMEOUT, SSH_CONNECT_TIMEOUT, Timeouts

from tests.client.conftest import one_error_line
from tests.client.fake_xapi_host import FakeHost

STALL = 60


def test_status_timeout_bounds_a_toolstack_call_that_never_returns(xapi_host: FakeHost) -> None:
    xapi_host.model.add_vm("vm")
    xapi_host.model.stall = {"VM.get_power_state"}
    proc, seconds = xapi_host.run("--timeout", "2", "status", "vm")
    line = one_error_line(proc, ExitCode.TIMEOUT)
    assert "status of 'vm': --timeout 2 s ran out" in line
    assert xapi_host.model.stalled == ["VM.get_power_state"]
    assert seconds < STALL / 2


def test_install_start_timeout_bounds_a_start_that_never_returns(xapi_host: FakeHost) -> None:
    xapi_host.model.stall = {"VM.start_on"}
    proc, seconds = xapi_host.run(
        "install", "--kernel", str(xapi_host.kernel), "--name", "vm", "--start", "--timeout", "3"
    )
    line = one_error_line(proc, ExitCode.TIMEOUT)
    assert "start of 'vm': --timeout 3 s ran out" in line
    assert xapi_host.model.stalled == ["VM.start_on"]
    assert [vm["name_label"] for vm in xapi_host.model.vms.values()] == ["vm"]  # registered
    assert seconds < STALL / 2


def test_install_without_start_is_bounded_too(xapi_host: FakeHost) -> None:
    xapi_host.model.stall = {"VM.create"}
    proc, seconds = xapi_host.run(
        "--timeout", "2", "install", "--kernel", str(xapi_host.kernel), "--name", "vm"
    )
    assert "install of 'vm': --timeout 2 s ran out" in one_error_line(proc, ExitCode.TIMEOUT)
    assert xapi_host.model.stalled == ["VM.create"] and seconds < STALL / 2


def test_a_toolstack_verb_is_bounded_from_the_first_call_on(xapi_host: FakeHost) -> None:
    xapi_host.model.add_vm("vm")
    xapi_host.model.stall = {"VM.get_by_name_label"}  # finding the VM, before any operation
    proc, seconds = xapi_host.run("--timeout", "2", "shutdown", "vm")
    assert "finding 'vm': --timeout 2 s ran out" in one_error_line(proc, ExitCode.TIMEOUT)
    assert seconds < STALL / 2


def test_a_login_that_never_answers_is_bounded(xapi_host: FakeHost) -> None:
    xapi_host.model.stall = {"session.login_with_password"}
    proc, seconds = xapi_host.run("--timeout", "2", "status", "vm")
    line = one_error_line(proc, ExitCode.TIMEOUT)
    assert "connecting to the toolstack on root@xen1: --timeout 2 s ran out" in line
    assert seconds < STALL / 2


def test_the_ssh_login_is_bounded_and_openssh_told_so(xapi_host: FakeHost) -> None:
    proc, seconds = xapi_host.run("--timeout", "2", "status", "vm", FAKE_SSH_SLOW_LOGIN="1")
    line = one_error_line(proc, ExitCode.SSH)  # the host could not be reached in time
    assert re.search(r"cannot reach root@xen1: no SSH login within (2|1\.\d) s$", line), line
    assert "ConnectTimeout=2" in xapi_host.ssh_argv()
    assert seconds < STALL / 2
    # Without --timeout, OpenSSH keeps the client's usual connect timeout.
    xapi_host.run("status", "vm")
    assert f"ConnectTimeout={SSH_CONNECT_TIMEOUT}" in xapi_host.ssh_argv()


def test_without_a_budget_steps_run_in_place_and_waits_keep_their_defaults() -> None:
    timeouts = Timeouts()
    assert timeouts.left() is None and timeouts.guest() == GUEST_TIMEOUT
    assert timeouts.ssh_connect() == SSH_CONNECT_TIMEOUT
    assert timeouts.step("x", threading.current_thread) is threading.current_thread()


def test_a_budget_is_shared_by_every_step_and_caps_openssh() -> None:
    assert Timeouts(2.5).ssh_connect() == 3 and Timeouts(0.2).ssh_connect() == 1
    assert Timeouts(600).ssh_connect() == SSH_CONNECT_TIMEOUT
    timeouts = Timeouts(30)
    assert 0 < timeouts.guest() <= 30 and timeouts.step("x", lambda: 7) == 7
    spent = Timeouts(0.01)
    release = threading.Event()
    with pytest.raises(OperationTimeout, match=r"^first: --timeout 0\.01 s ran out"):
        spent.step("first", lambda: release.wait(5))
    release.set()
    assert spent.left() == 0.0 and spent.guest() == 0.0
