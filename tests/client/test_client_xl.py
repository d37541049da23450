"""The xl backend's command construction and config files (no host needed)."""

from __future__ import annotations

import json

import pytest
from xen_test_vm.errors import ToolstackError, UsageError
from xen_test_vm.remote import CommandResult
from xen_test_vm.toolstack import Vm, VmSpec, validate_vm_name
from xen_test_vm.xl import ACK_FAILURE, XlToolstack, config_slug, xl_config, xl_string

from tests.client.client_fakes import RecordingHost


def test_xl_strings_use_only_the_escapes_libxlu_gets_right() -> None:
    assert xl_string('a"b') == '"a\\"b"'
    assert xl_string("a'b") == '"a\\\'b"'
    assert xl_string("a\\b") == '"a\\\\b"'
    assert xl_string("a\nb\tc") == '"a\\nb\\tc"'
    assert xl_string("$(x);`y`") == '"$(x);`y`"'
    assert xl_string("ünï") == '"ünï"'
    with pytest.raises(UsageError, match="control character"):
        xl_string("bell\x01")


def test_config_names_the_vm_and_its_kernel() -> None:
    spec = VmSpec(
        name='evil "name"; $(x)', kernel="/k/test-vm.xen.gz", memory_mib=16, cmdline="heartbeat=0"
    )
    text = xl_config(spec)
    assert 'name = "evil \\"name\\"; $(x)"\n' in text
    assert 'kernel = "/k/test-vm.xen.gz"\n' in text
    assert 'cmdline = "heartbeat=0"\n' in text
    assert "memory = 16\n" in text and "maxmem = 16\n" in text
    assert 'on_poweroff = "destroy"\non_reboot = "restart"\non_crash = "destroy"\n' in text


def test_config_file_names_are_safe_and_distinct() -> None:
    a, b = config_slug("a/b c"), config_slug("a_b_c")
    assert a != b
    assert "/" not in a and " " not in a
    assert config_slug("\n\n").startswith("vm-")


@pytest.mark.parametrize("bad", ["", "123", "x" * 129, "nul\0byte"])
def test_vm_names_toolstacks_misread_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        validate_vm_name(bad)


def test_define_writes_the_config_atomically_in_one_command(recording_host: RecordingHost) -> None:
    xl = XlToolstack(recording_host, "/srv/my dir")
    vm = xl.define(VmSpec(name="t1", kernel="/srv/my dir/test-vm.xen.gz"))
    assert vm == Vm(name="t1", ref=f"/srv/my dir/vms/{config_slug('t1')}.cfg")
    (argv,) = recording_host.calls
    assert argv[:2] == ["sh", "-c"]
    assert argv[4:] == [vm.ref, "/srv/my dir/vms", "/srv/my dir/saved"]
    assert (
        recording_host.inputs[0]
        == xl_config(VmSpec(name="t1", kernel="/srv/my dir/test-vm.xen.gz")).encode()
    )


def test_a_name_with_a_slash_is_refused_before_anything_runs(recording_host: RecordingHost) -> None:
    with pytest.raises(UsageError, match="'/'"):
        XlToolstack(recording_host).define(VmSpec(name="a/b", kernel="/k"))
    assert recording_host.calls == []


def _xl_list(domains: dict[str, int]) -> str:
    return json.dumps([{"domid": d, "config": {"c_info": {"name": n}}} for n, d in domains.items()])


def test_operations_address_the_domain_by_id(recording_host: RecordingHost) -> None:
    def respond(argv: list[str], _: bytes | None) -> CommandResult | None:
        if argv[:3] == ["xl", "list", "-l"]:
            return CommandResult(argv, 0, _xl_list({"Domain-0": 0, "-rf x\ny": 7}), "")
        return None

    recording_host.responder = respond
    xl = XlToolstack(recording_host)
    vm = Vm(name="-rf x\ny", ref="/cfg")
    xl.clean_shutdown(vm)
    xl.clean_reboot(vm)
    xl.suspend(vm)
    xl.migrate(vm)
    xl.migrate(vm, "other-host")
    ops = [c for c in recording_host.calls if c[:3] != ["xl", "list", "-l"]]
    save = xl.save_path(vm)
    assert ops == [
        ["xl", "shutdown", "-w", "7"],
        ["xl", "reboot", "-w", "7"],
        ["mkdir", "-p", "/var/lib/xen-test-vm/saved"],
        ["xl", "save", "7", save],
        ["xl", "migrate", "-s", "", "7", "xl migrate-receive"],
        ["xl", "migrate", "7", "other-host"],
    ]


def test_an_unacknowledged_request_maps_to_ack_timeout(recording_host: RecordingHost) -> None:
    def respond(argv: list[str], _: bytes | None) -> CommandResult | None:
        if argv[:3] == ["xl", "list", "-l"]:
            return CommandResult(argv, 0, _xl_list({"t": 3}), "")
        if argv[1] == "shutdown":
            msg = (
                "libxl: error: libxl_domain.c:854:pvcontrol_cb: "
                "guest didn't acknowledge control request: -9\n"
            )
            return CommandResult(argv, 1, "", msg)
        return None

    recording_host.responder = respond
    with pytest.raises(ToolstackError) as info:
        XlToolstack(recording_host).clean_shutdown(Vm(name="t", ref="/cfg"))
    assert info.value.code == ACK_FAILURE
    assert "didn't acknowledge" in str(info.value)


def test_state_and_shutdown_reason_come_from_xl_list_v(recording_host: RecordingHost) -> None:
    out = (
        "Name  ID   Mem VCPUs\tState\tTime(s)   UUID      Reason-Code\tSecurity Label\n"
        "a 5 b\n"
        "c   5    16     1     ---sc-       0.1 6ec293ee-e67e-4e90-82d2-971f2dc0cad0   3   -\n"
    )
    recording_host.responder = lambda argv, _: CommandResult(argv, 0, out, "")
    assert XlToolstack(recording_host).domain_state(5) == ("---sc-", 3)


def test_the_reaper_destroys_half_migrated_domains_too(recording_host: RecordingHost) -> None:
    xl = XlToolstack(recording_host, state_dir="/tmp/run")
    commands = xl.cleanup_commands(Vm(name="t", ref="/cfg"))
    assert ["xl", "destroy", "--", "t--incoming"] in commands
    assert ["xl", "destroy", "--", "t--migratedaway"] in commands
    assert commands[-1] == ["rm", "-f", "/cfg", f"/tmp/run/{config_slug('t')}.save"]


def test_live_migration_needs_shadow_paging(recording_host: RecordingHost) -> None:
    recording_host.responder = lambda argv, _: CommandResult(
        argv, 0, "virt_caps : pv hvm hap\n", ""
    )
    assert "shadow" in (XlToolstack(recording_host).live_migration_blocker() or "")
    recording_host.responder = lambda argv, _: CommandResult(
        argv, 0, "virt_caps : pv hvm hap shadow\n", ""
    )
    assert XlToolstack(recording_host).live_migration_blocker() is None
