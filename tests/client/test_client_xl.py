"""The xl backend's command construction and config files (no host needed)."""

from __future__ import annotations

import json

import pytest
from xen_test_vm.errors import ToolstackError, UsageError
from xen_test_vm.remote import CommandResult
from xen_test_vm.scenarios import ALL
from xen_test_vm.toolstack import Vm, VmSpec, default_mode, validate_vm_name
from xen_test_vm.xl import ACK_FAILURE, XlToolstack, config_slug, xl_config, xl_string
from xen_test_vm.xl_writer import SHIM_CPUID_ON_FAMILY_15, shim_cpuid

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


def test_config_writes_every_option_the_lab_and_the_kernel_tests_use() -> None:
    spec = VmSpec(
        name="g",
        kernel="/r/test-vm.xen.gz",
        memory_mib=4,
        vcpus=2,
        cmdline="xsstats=1 heartbeat=0",
        on_poweroff="preserve",
        on_reboot="preserve",
        on_crash="preserve",
        mode="pvh",
    )
    assert xl_config(spec) == (
        'name = "g"\ntype = "pvh"\nkernel = "/r/test-vm.xen.gz"\n'
        'cmdline = "xsstats=1 heartbeat=0"\nmemory = 4\nmaxmem = 4\nvcpus = 2\n'
        'on_poweroff = "preserve"\non_reboot = "preserve"\non_crash = "preserve"\n'
    )
    # No command line is an empty one: the kernel reads "" either way.
    assert 'cmdline = ""\n' in xl_config(VmSpec(name="g", kernel="/k"))
    assert "vcpus = 1\n" in xl_config(VmSpec(name="g", kernel="/k"))


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
    ops = [c for c in recording_host.calls if c[:3] != ["xl", "list", "-l"]]
    save = xl.save_path(vm)
    assert ops == [
        ["xl", "shutdown", "-w", "7"],
        ["xl", "reboot", "-w", "7"],
        ["mkdir", "-p", "/var/lib/xen-test-vm/saved"],
        ["xl", "save", "7", save],
        ["xl", "migrate", "-s", "", "7", "xl migrate-receive"],
    ]


def _destination_host(recording_host: RecordingHost, migrate_fails: bool = False) -> None:
    def respond(argv: list[str], _: bytes | None) -> CommandResult | None:
        if argv[:3] == ["xl", "list", "-l"]:
            return CommandResult(argv, 0, _xl_list({"Domain-0": 0, "t1": 7}), "")
        if argv[:2] == ["cat", "--"]:
            return CommandResult(argv, 0, 'name = "t1"\nkernel = "/srv/k dir/k.gz"\n', "")
        if migrate_fails and argv[:2] == ["xl", "migrate"]:
            return CommandResult(argv, 1, "", "libxl: error: migration failed")
        return None

    recording_host.responder = respond


def test_migrate_to_another_host_takes_config_and_kernel_along(
    recording_host: RecordingHost,
) -> None:
    """The VM lives with its config: it goes to the destination first (by this dom0's ssh,
    which xl migrate uses too), the kernel with it; the config leaves this host after."""
    _destination_host(recording_host)
    XlToolstack(recording_host).migrate(Vm(name="t1", ref="/cfg/t1.cfg"), "other-host")
    ops = [c for c in recording_host.calls if c[:3] != ["xl", "list", "-l"]]
    assert ops[0] == ["cat", "--", "/cfg/t1.cfg"]
    copies = [c[2] for c in ops[1:3]]
    assert all(c.startswith("ssh -o BatchMode=yes -- other-host ") for c in copies)
    assert (
        copies[0].endswith("< /cfg/t1.cfg") and "mv -f -- /cfg/t1.cfg.part /cfg/t1.cfg" in copies[0]
    )
    assert copies[1].endswith("< '/srv/k dir/k.gz'")
    assert ops[3:] == [["xl", "migrate", "7", "other-host"], ["rm", "-f", "--", "/cfg/t1.cfg"]]


def test_a_failed_migration_removes_the_copies_and_keeps_the_config(
    recording_host: RecordingHost,
) -> None:
    _destination_host(recording_host, migrate_fails=True)
    with pytest.raises(ToolstackError, match="migration failed"):
        XlToolstack(recording_host).migrate(Vm(name="t1", ref="/cfg/t1.cfg"), "other-host")
    last = recording_host.calls[-1]
    assert last[:2] == ["sh", "-c"] and "other-host 'rm -f -- /cfg/t1.cfg" in last[2]
    assert ["rm", "-f", "--", "/cfg/t1.cfg"] not in recording_host.calls


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


def test_one_xl_config_writer_for_every_config() -> None:
    from xen_test_vm.xl import xl_config_text

    text = xl_config_text({"name": 'a "b"', "memory": 16, "extra": "console=hvc0"})
    assert text == 'name = "a \\"b\\""\nmemory = 16\nextra = "console=hvc0"\n'
    with pytest.raises(ValueError, match="not an xl config key"):
        xl_config_text({"bad key": "x"})
    assert xl_config_text({"acpi": True, "apic": False}) == "acpi = 1\napic = 0\n"


def test_free_form_configs_take_ramdisk_and_extra() -> None:
    from xen_test_vm.xl import xl_config_text

    text = xl_config_text(
        {"name": "b", "type": "pv", "kernel": "/k", "ramdisk": "/i", "extra": "console=hvc0 quiet"}
    )
    assert text == (
        'name = "b"\ntype = "pv"\nkernel = "/k"\nramdisk = "/i"\nextra = "console=hvc0 quiet"\n'
    )


def test_pvh_live_migration_also_works_with_hardware_assisted_paging(
    recording_host: RecordingHost,
) -> None:
    recording_host.responder = lambda argv, _: CommandResult(
        argv, 0, "virt_caps : pv hvm hap\n", ""
    )
    assert XlToolstack(recording_host).live_migration_blocker("pvh") is None
    recording_host.responder = lambda argv, _: CommandResult(argv, 0, "virt_caps : pv\n", "")
    assert "hap" in (XlToolstack(recording_host).live_migration_blocker("pvh") or "")


def test_xl_config_type_is_the_boot_mode() -> None:
    assert 'type = "pvh"\n' in xl_config(VmSpec(name="t", kernel="/k", mode="pvh"))
    assert 'type = "pv"\n' in xl_config(VmSpec(name="t", kernel="/k"))


def test_default_mode_is_pvh_on_xapi_and_pv_on_xl() -> None:
    assert (default_mode("xapi"), default_mode("xl")) == ("pvh", "pv")


def test_a_domain_gone_between_lookup_and_xl_list_is_looked_up_again(
    recording_host: RecordingHost,
) -> None:
    answers = iter(
        [
            (1, "", "Error: Domain '2' does not exist.\n"),
            (0, "Name ID Mem VCPUs State Time(s) UUID Reason-Code Security\n"
                "vm 3 16 1 -b---- 0.1 u -1 -\n", ""),
        ]
    )  # fmt: skip

    def respond(argv: list[str], _input: bytes | None) -> CommandResult | None:
        return CommandResult(argv, *next(answers)) if argv[:3] == ["xl", "list", "-v"] else None

    recording_host.responder = respond
    ts = XlToolstack(recording_host)
    ts.domid = lambda vm: 2  # type: ignore[method-assign]
    assert ts.power_state(Vm("vm", "/cfg")) == "running"


def test_pv_in_pvh_is_a_pvh_domain_with_the_shim() -> None:
    text = xl_config(VmSpec(name="t", kernel="/k", mode="pv_in_pvh", memory_mib=180))
    assert 'type = "pvh"\n' in text and "pvshim = 1\n" in text and "cpuid" not in text
    # XAPI's memory model: the shim's 23 MiB + 1 per 90 on top of the VM's own.
    assert "memory = 205\n" in text and "maxmem = 205\n" in text
    assert "pvshim" not in xl_config(VmSpec(name="t", kernel="/k", mode="pvh"))


CPUINFO = "processor\t: {n}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: 107\n\n"


@pytest.mark.parametrize(
    ("vendor", "family", "wanted"),
    [
        ("AuthenticAMD", 15, SHIM_CPUID_ON_FAMILY_15),  # QEMU's TCG max / qemu64
        ("AuthenticAMD", 25, ""),
        ("GenuineIntel", 15, ""),
        ("GenuineIntel", 6, ""),
    ],
)
def test_the_shim_gets_a_zen_family_only_on_family_15_amd(
    vendor: str, family: int, wanted: str
) -> None:
    cpuinfo = "".join(CPUINFO.format(n=n, vendor=vendor, family=family) for n in range(2))
    assert shim_cpuid(cpuinfo) == wanted


def test_xl_writes_the_shim_cpuid_the_host_needs(recording_host: RecordingHost) -> None:
    """The host's /proc/cpuinfo is read once, and only for a PV-in-PVH VM."""
    cpuinfo = CPUINFO.format(n=0, vendor="AuthenticAMD", family=15)

    def respond(argv: list[str], _input: bytes | None) -> CommandResult | None:
        return CommandResult(argv, 0, cpuinfo, "") if argv == ["cat", "/proc/cpuinfo"] else None

    recording_host.responder = respond
    ts = XlToolstack(recording_host)
    ts.define(VmSpec(name="plain", kernel="/k", mode="pv"))
    assert ["cat", "/proc/cpuinfo"] not in recording_host.calls
    for name in ("a", "b"):
        ts.define(VmSpec(name=name, kernel="/k", mode="pv_in_pvh"))
    assert recording_host.calls.count(["cat", "/proc/cpuinfo"]) == 1
    written = recording_host.inputs[-1] or b""
    assert f'cpuid = "{SHIM_CPUID_ON_FAMILY_15}"\n'.encode() in written


def test_memory_target_and_count_address_the_domain_by_id(recording_host: RecordingHost) -> None:
    """Section 9's smoke rows: `xl mem-set <domid> <n>m`, and the domain's pages from `xl list`'s
    Mem column, counted from the right (a name may hold spaces)."""

    def respond(argv: list[str], _: bytes | None) -> CommandResult | None:
        if argv[:3] == ["xl", "list", "-l"]:
            return CommandResult(argv, 0, _xl_list({"Domain-0": 0, "a b": 7}), "")
        if argv == ["xl", "list", "7"]:
            out = (
                "Name   ID   Mem VCPUs\tState\tTime(s)\na b    7     8     1     -b----       0.2\n"
            )
            return CommandResult(argv, 0, out, "")
        return None

    recording_host.responder = respond
    xl = XlToolstack(recording_host)
    vm = Vm(name="a b", ref="/cfg")
    xl.set_memory_target(vm, 8)
    assert xl.memory_kib(vm) == 8 * 1024
    ops = [c for c in recording_host.calls if c[:3] != ["xl", "list", "-l"]]
    assert ops == [["xl", "mem-set", "7", "8m"], ["xl", "list", "7"]]


def test_balloon_smoke_rows_are_xl_toolstack_rows() -> None:
    rows = {s.name: s for s in ALL if s.name.startswith("balloon-")}
    assert sorted(rows) == ["balloon-down", "balloon-ignore"]
    assert all(r.group == "toolstack" and r.backends == {"xl"} for r in rows.values())
