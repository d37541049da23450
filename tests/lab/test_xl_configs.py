"""Every xl config the lab, the bench and the kernel tests write comes from the client's writer.

No lab needed: these build the config text only.
"""

from __future__ import annotations

import pytest
from xen_test_lab import bench_kernel
from xen_test_lab.lab import LabHost
from xen_test_vm.errors import UsageError
from xen_test_vm.toolstack import VmSpec
from xen_test_vm.xl import xl_config

from tests.kernel import guests, testing_lab
from tests.lab import xl_guests


def test_kernel_test_guests_keep_their_crash_and_one_vcpu() -> None:
    text = guests.xl_config("xtv-a-1", kernel="/r/k.gz", memory_mib=4, cmdline='heartbeat=0 x="y"')
    assert text == xl_config(
        VmSpec(
            name="xtv-a-1",
            kernel="/r/k.gz",
            memory_mib=4,
            cmdline='heartbeat=0 x="y"',
            on_crash="preserve",
        )
    )
    # A command line with quotes stays one xl string (the hand-written one broke the config).
    assert 'cmdline = "heartbeat=0 x=\\"y\\""\n' in text
    assert 'type = "pvh"\n' in guests.xl_config("g", mode="pvh")


def test_testing_matrix_guests_preserve_every_shutdown() -> None:
    text = testing_lab.guest_config("g", "/r/k.gz", mode="pvh")
    assert 'on_poweroff = "preserve"\non_reboot = "preserve"\non_crash = "preserve"\n' in text
    assert 'type = "pvh"\n' in text and "vcpus = 1\n" in text and "memory = 16\n" in text


def test_bench_guests_get_the_client_config_with_their_command_line() -> None:
    text = bench_kernel._kernel_config("bench-pairs-pv", "/r/k.gz", 16, "pv", cmdline="heartbeat=0")
    assert text == xl_config(
        VmSpec(name="bench-pairs-pv", kernel="/r/k.gz", memory_mib=16, cmdline="heartbeat=0")
    )


def test_the_linux_baseline_config_is_quoted_by_the_same_writer() -> None:
    text = LabHost.baseline_guest_config(object.__new__(LabHost), "base")  # no lab: text only
    assert text.startswith('name = "base"\ntype = "pv"\n')
    assert 'extra = "console=hvc0 quiet"\n' in text and 'on_crash = "preserve"\n' in text


def test_migration_and_two_host_guests_keep_their_settings_and_are_quoted() -> None:
    """tests/lab/xl_guests.py's PV guests (test_migration, test_two_hosts): the same six settings
    as its former hand-written text, now with the client's quoting."""
    assert xl_guests.pv_config("mig-1", "/root/m/test-vm.xen.gz") == (
        'name = "mig-1"\ntype = "pv"\nkernel = "/root/m/test-vm.xen.gz"\nmemory = 16\n'
        'extra = "heartbeat=0"\non_crash = "preserve"\n'
    )
    # The hand-written text put these in raw, which ended the xl string early.
    text = xl_guests.pv_config('a "b"', "/r/k\\1.gz")
    assert 'name = "a \\"b\\""\n' in text
    assert 'kernel = "/r/k\\\\1.gz"\n' in text
    with pytest.raises(UsageError, match="control character"):
        xl_guests.pv_config("soh\x01", "/r/k.gz")
