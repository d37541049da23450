"""The XAPI backend against a FAKE XAPI (tests/client/xapi_fake.py).

XAPI cannot run here. The fake is a local XML-RPC server that follows XAPI's documented wire
format (Status/Value, ErrorDescription [CODE, params...], int64 as strings, event.from tokens);
these tests assert the exact XenAPI calls the backend makes, not XAPI's behaviour.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import XenAPI
from xen_test_vm.errors import ToolstackError, UsageError
from xen_test_vm.remote import CommandResult, atomic_write_command
from xen_test_vm.session import ConnectOptions, member_options
from xen_test_vm.toolstack import Vm, VmSpec
from xen_test_vm.xapi import (
    GUEST_DIR_NEW,
    GUEST_DIR_OLD,
    XapiToolstack,
    guest_kernel_dir,
    vm_record,
)

from tests.client.client_fakes import RecordingHost
from tests.client.xapi_fake import HOST, OTHER_HOST, SESSION, FakeXapi, FakeXapiServer

SPEC = VmSpec(name="xtvm 'one'; $(x)", kernel="/var/lib/xcp/guest/test-vm.xen.gz", memory_mib=32)


@pytest.fixture
def fake() -> Iterator[tuple[FakeXapi, FakeXapiServer]]:
    model = FakeXapi()
    with FakeXapiServer(model) as server:
        yield model, server


def _backend(server: FakeXapiServer, host: RecordingHost | None = None) -> XapiToolstack:
    return XapiToolstack(
        host or RecordingHost(), session_factory=lambda: XenAPI.Session(server.url)
    )


def _running(server: FakeXapiServer) -> tuple[XapiToolstack, Vm]:
    """A toolstack on the fake and SPEC's VM, defined and started."""
    ts = _backend(server)
    vm = ts.define(SPEC)
    ts.start(vm)
    return ts, vm


def test_login_and_kernel_directory_from_software_version(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    ts = _backend(server)
    assert ts.kernel_dir() == GUEST_DIR_NEW
    assert model.calls[0] == ("session.login_with_password", ("root", "", "1.0", "xen-test-vm"))
    assert model.api_calls()[1:] == [
        ("session.get_this_host", (SESSION,)),
        ("host.get_software_version", (HOST,)),
    ]
    assert all(args[0] == SESSION for _, args in model.calls[1:])


@pytest.mark.parametrize(
    ("version", "directory"),
    [
        ({"xapi": "24.20", "xapi_build": "24.20.0"}, GUEST_DIR_NEW),
        ({"xapi": "25.6"}, GUEST_DIR_NEW),
        ({"xapi": "24.19", "xapi_build": "24.19.2"}, GUEST_DIR_NEW),
        ({"xapi": "23.9", "xapi_build": "23.9.0"}, GUEST_DIR_NEW),
        ({"xapi": "23.8", "xapi_build": "23.8.1"}, GUEST_DIR_OLD),
        ({"xapi": "1.249"}, GUEST_DIR_OLD),
        # A dev build (ocaml/util/xapi_version.ml): today's source, /var/lib/xcp/guest only.
        ({"xapi": "0.0", "xapi_build": "0.0.dev", "git_id": "dev"}, GUEST_DIR_NEW),
        ({"xapi_build": "0.0.dev"}, GUEST_DIR_NEW),
    ],
)
def test_kernel_directory_by_xapi_version(version: dict[str, str], directory: str) -> None:
    assert guest_kernel_dir(version) == directory


def test_unknown_xapi_version_is_an_error() -> None:
    with pytest.raises(ToolstackError, match="UNKNOWN_XAPI_VERSION"):
        guest_kernel_dir({"product_version": "8.3.0"})


def test_vm_create_sends_the_xe_vm_create_fields_with_int64_as_strings(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    ts = _backend(server)
    vm = ts.define(SPEC)
    calls = model.api_calls()
    assert [m for m, _ in calls[1:]] == [
        "VM.get_by_name_label",
        "session.get_this_host",
        "VM.create",
        "VM.get_uuid",
    ]
    record: dict[str, Any] = calls[3][1][0]
    # Affinity: a plain VM.start picks the host we are on, which has the kernel.
    assert record == vm_record(SPEC) | {"affinity": HOST}
    mib32 = str(32 * 1024 * 1024)
    assert {k: record[k] for k in record if k.startswith("memory_")} == {
        "memory_target": mib32,
        "memory_static_max": mib32,
        "memory_dynamic_max": mib32,
        "memory_dynamic_min": mib32,
        "memory_static_min": mib32,
    }
    assert (record["VCPUs_max"], record["VCPUs_at_startup"], record["user_version"]) == (
        "1",
        "1",
        "0",
    )
    assert record["domain_type"] == "pv" and record["HVM_boot_policy"] == ""
    assert record["PV_kernel"] == SPEC.kernel and record["name_label"] == SPEC.name
    assert (
        record["actions_after_shutdown"],
        record["actions_after_reboot"],
        record["actions_after_crash"],
    ) == (
        "destroy",
        "restart",
        "destroy",
    )
    assert vm.uuid == model.vms[vm.ref]["uuid"]


def test_define_sets_the_boot_mode_and_changes_it_on_an_existing_vm(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    ts = _backend(server)
    vm = ts.define(VmSpec(name="moded", kernel=SPEC.kernel, mode="pvh"))
    assert model.vms[vm.ref]["domain_type"] == "pvh"
    model.calls.clear()
    ts.define(VmSpec(name="moded", kernel=SPEC.kernel, mode="pv"))
    assert ("VM.set_domain_type", (vm.ref, "pv")) in model.api_calls()
    assert model.vms[vm.ref]["domain_type"] == "pv"


def test_re_running_define_updates_the_same_vm(fake: tuple[FakeXapi, FakeXapiServer]) -> None:
    model, server = fake
    ts = _backend(server)
    first = ts.define(SPEC)
    model.calls.clear()
    second = ts.define(
        VmSpec(name=SPEC.name, kernel="/boot/guest/k", memory_mib=16, cmdline="heartbeat=0")
    )
    assert second.ref == first.ref and len(model.vms) == 1
    mib16 = str(16 * 1024 * 1024)
    assert model.api_calls() == [
        ("VM.get_by_name_label", (SPEC.name,)),
        ("VM.get_record", (first.ref,)),
        ("VM.set_PV_kernel", (first.ref, "/boot/guest/k")),
        ("VM.set_PV_args", (first.ref, "heartbeat=0")),
        ("VM.set_memory_limits", (first.ref, mib16, mib16, mib16, mib16)),
    ]


def test_power_operations_make_exactly_these_calls(fake: tuple[FakeXapi, FakeXapiServer]) -> None:
    model, server = fake
    kernel = b"\x1f\x8b fake kernel \x00\xff"
    here = RecordingHost(
        responder=lambda argv, _: (
            CommandResult(argv, 0, base64.b64encode(kernel).decode(), "")
            if argv[0] == "base64"
            else None
        )
    )
    members: list[tuple[str, RecordingHost]] = []

    def open_member(address: str) -> RecordingHost:
        members.append((address, RecordingHost(name=address)))
        return members[-1][1]

    ts = XapiToolstack(
        here, session_factory=lambda: XenAPI.Session(server.url), open_member=open_member
    )
    vm = ts.define(SPEC)
    model.calls.clear()
    ts.start(vm)
    assert ts.domid(vm) == 1 and ts.power_state(vm) == "running"
    ts.clean_reboot(vm)
    ts.suspend(vm)
    ts.resume(vm)
    ts.migrate(vm)
    ts.migrate(vm, "member2")
    ts.clean_shutdown(vm)
    assert ts.domid(vm) is None
    ts.undefine(vm)
    ref = vm.ref
    assert model.api_calls() == [
        ("VM.start_on", (ref, HOST, False, False)),
        ("VM.get_domid", (ref,)),
        ("VM.get_power_state", (ref,)),
        ("VM.clean_reboot", (ref,)),
        ("VM.suspend", (ref,)),
        ("VM.resume_on", (ref, HOST, False, False)),
        ("VM.pool_migrate", (ref, HOST, {"live": "true"})),
        ("host.get_by_name_label", ("member2",)),
        ("VM.get_PV_kernel", (ref,)),
        ("host.get_address", (OTHER_HOST,)),
        ("VM.pool_migrate", (ref, OTHER_HOST, {"live": "true"})),
        ("VM.clean_shutdown", (ref,)),
        ("VM.get_domid", (ref,)),
        ("VM.destroy", (ref,)),
    ]
    assert model.vms == {}
    # Before the VM moved to member2, its kernel was copied there (it restarts there).
    [(address, member)] = members
    assert address == "192.0.2.2"
    assert member.calls[0] == ["mkdir", "-p", "/var/lib/xcp/guest"]
    assert member.calls[1] == atomic_write_command(SPEC.kernel)
    assert member.inputs[1] == kernel


def test_a_silent_guest_gives_xapis_acknowledgement_errors(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    ts, vm = _running(server)
    model.silent_guests.add(vm.ref)
    with pytest.raises(ToolstackError) as shutdown:
        ts.clean_shutdown(vm)
    assert shutdown.value.code == "VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT"
    with pytest.raises(ToolstackError) as suspend:
        ts.suspend(vm)
    assert suspend.value.code == "VM_FAILED_SUSPEND_ACKNOWLEDGMENT"
    assert ts.power_state(vm) == "running"


def test_failures_keep_code_and_parameters(fake: tuple[FakeXapi, FakeXapiServer]) -> None:
    _, server = fake
    ts = _backend(server)
    vm = ts.define(SPEC)
    with pytest.raises(ToolstackError) as info:
        ts.clean_shutdown(vm)
    assert info.value.code == "VM_BAD_POWER_STATE"
    assert str(info.value) == f"VM_BAD_POWER_STATE: VM.clean_shutdown {vm.ref} running halted"


def test_power_state_waits_follow_event_from_tokens(fake: tuple[FakeXapi, FakeXapiServer]) -> None:
    model, server = fake
    ts, vm = _running(server)
    model.calls.clear()
    result: list[str] = []
    waiter = threading.Thread(target=lambda: result.append(ts.wait_power_state(vm, {"halted"}, 30)))
    waiter.start()

    def waiting_on_token() -> bool:
        return any(m == "event.from" and a[2] for m, a in model.calls)

    with model.changed:
        model.changed.wait_for(waiting_on_token, timeout=10)
    model.set_power(vm.ref, "Halted")
    waiter.join(30)
    assert result == ["halted"]
    froms = [a for m, a in model.api_calls() if m == "event.from"]
    assert froms[0] == ([f"vm/{vm.ref}"], "", froms[0][2])
    assert all(args[1] for args in froms[1:])  # later calls pass the token they were given
    assert all(isinstance(args[2], float) for args in froms)


def test_bad_credentials_and_pool_members_are_one_line_errors(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    with pytest.raises(ToolstackError, match="SESSION_AUTHENTICATION_FAILED"):
        XapiToolstack(
            RecordingHost(), session_factory=lambda: XenAPI.Session(server.url), username="bob"
        )
    original = model.dispatch

    def slave(method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        if method == "session.login_with_password":
            return {"Status": "Failure", "ErrorDescription": ["HOST_IS_SLAVE", "192.0.2.1"]}
        result: dict[str, Any] = original(method, params)
        return result

    model.dispatch = slave  # type: ignore[method-assign]
    with pytest.raises(UsageError, match=r"pool master 192\.0\.2\.1"):
        _backend(server)


def test_reaper_commands_address_the_vm_by_uuid(fake: tuple[FakeXapi, FakeXapiServer]) -> None:
    _, server = fake
    ts = _backend(server)
    vm = ts.define(SPEC)
    assert ts.cleanup_commands(vm) == [
        ["xe", "vm-shutdown", "--force", f"uuid={vm.uuid}"],
        ["xe", "vm-destroy", f"uuid={vm.uuid}"],
    ]


def test_on_a_pool_member_the_kernel_and_the_vm_stay_on_that_member(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    """Over a member's socket xapi logs in and forwards to the master: this host is
    session.get_this_host, not pool.get_master."""
    model, server = fake
    model.this_host = OTHER_HOST
    model.software_version = {"xapi": "1.249", "xapi_build": "1.249.3"}  # the master's
    versions = {HOST: dict(model.software_version), OTHER_HOST: {"xapi": "26.1"}}
    model.m_host_get_software_version = lambda host: {  # type: ignore[method-assign]
        "Status": "Success",
        "Value": versions[host],
    }
    ts = _backend(server)
    assert ts.is_pool_member()
    assert ts.kernel_dir() == GUEST_DIR_NEW  # the member's xapi decides where its kernels go
    vm = ts.define(SPEC)
    assert model.vms[vm.ref]["affinity"] == OTHER_HOST
    ts.start(vm)
    ts.suspend(vm)
    ts.resume(vm)
    assert model.vms[vm.ref]["resident_on"] == OTHER_HOST
    assert ("VM.start_on", (vm.ref, OTHER_HOST, False, False)) in model.api_calls()
    assert ("VM.resume_on", (vm.ref, OTHER_HOST, False, False)) in model.api_calls()


def test_over_a_members_socket_this_host_is_the_inventorys_not_the_sessions(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    """xapi forwards a member's socket login to the master, whose session names the master
    (model.this_host stays HOST); the member's inventory names the member."""
    model, server = fake

    def inventory(argv: list[str], _input: bytes | None) -> CommandResult | None:
        if argv == ["cat", "/etc/xensource-inventory"]:
            return CommandResult(argv, 0, "PRODUCT_BRAND='x'\nINSTALLATION_UUID='uuid-2'\n", "")
        return None

    model.m_host_get_by_uuid = lambda value: (  # type: ignore[method-assign]
        {"Status": "Success", "Value": OTHER_HOST}
        if value == "uuid-2"
        else {"Status": "Failure", "ErrorDescription": ["UUID_INVALID", "host", value]}
    )
    ts = _backend(server, RecordingHost(responder=inventory))
    assert ts.this_host() == OTHER_HOST
    assert ts.is_pool_member()
    assert "session.get_this_host" not in [m for m, _ in model.api_calls()]


def test_a_members_socket_refusing_root_without_a_password_says_to_give_it(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    model.password = "root's"
    with pytest.raises(UsageError, match=r"on a pool member .*--xapi-password-file"):
        _backend(server)
    ts = XapiToolstack(
        RecordingHost(), session_factory=lambda: XenAPI.Session(server.url), password="root's"
    )
    assert ts.this_host() == HOST


def test_without_an_inventory_this_host_is_the_sessions(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    ts = _backend(server)
    assert ts.this_host() == HOST
    assert "session.get_this_host" in [m for m, _ in model.api_calls()]


@pytest.mark.parametrize(
    ("host", "address", "member"),
    [
        ("root@xen1", "192.0.2.2", "root@192.0.2.2"),
        ("ssh://admin@xen1:2222", "192.0.2.2", "admin@192.0.2.2"),
        ("xen1", "2001:db8::2", "[2001:db8::2]"),
    ],
)
def test_pool_members_are_reached_with_the_user_of_host(
    host: str, address: str, member: str
) -> None:
    assert member_options(ConnectOptions(host=host), address).host == member


def test_re_install_on_a_running_vm_with_new_memory_changes_nothing(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    """set_memory_limits only while Halted: refused before the kernel is swapped."""
    model, server = fake
    ts, vm = _running(server)
    before = dict(model.vms[vm.ref])
    with pytest.raises(ToolstackError) as info:
        ts.define(VmSpec(name=SPEC.name, kernel="/var/lib/xcp/guest/new.xen.gz", memory_mib=16))
    assert info.value.code == "VM_BAD_POWER_STATE" and "nothing was changed" in str(info.value)
    assert model.vms[vm.ref] == before


def test_re_install_on_a_running_vm_with_the_same_memory_updates_the_next_boot(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    model, server = fake
    ts, vm = _running(server)
    ts.define(VmSpec(name=SPEC.name, kernel="/var/lib/xcp/guest/new.xen.gz", memory_mib=32))
    assert model.vms[vm.ref]["PV_kernel"] == "/var/lib/xcp/guest/new.xen.gz"
    assert model.vms[vm.ref]["power_state"] == "Running"
    assert "VM.set_memory_limits" not in [m for m, _ in model.api_calls()]


def test_re_install_resets_the_hvm_boot_policy_and_the_domain_type(
    fake: tuple[FakeXapi, FakeXapiServer],
) -> None:
    """VM.create keeps both fields as given (xapi_vm.ml derives domain_type only when it is
    unspecified): a VM may say pvh and still carry an HVM boot policy or a bootloader."""
    model, server = fake
    ts = _backend(server)
    vm = ts.define(VmSpec(name="moded", kernel=SPEC.kernel, mode="pvh"))
    model.vms[vm.ref] |= {"HVM_boot_policy": "BIOS order", "PV_bootloader": "pygrub"}
    ts.define(VmSpec(name="moded", kernel=SPEC.kernel, mode="pvh"))
    record = model.vms[vm.ref]
    assert (record["domain_type"], record["HVM_boot_policy"], record["PV_bootloader"]) == (
        "pvh",
        "",
        "",
    )
