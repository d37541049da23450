"""The XAPI emulator's xl configs come from the client's writer, in the checkout and in dom0.

No lab needed: these build the config text only, and unpack the emulator's dom0 copy locally.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from xapi_emulator.domains import DomainConfig, DomainError
from xen_test_lab import xapi_lab
from xen_test_vm.errors import UsageError
from xen_test_vm.toolstack import VmSpec
from xen_test_vm.xl import xl_config, xl_config_text, xl_string

HOSTILE = "a \"quoted\" 'one' C:\\path\nsecond line\tend"
BASE = DomainConfig(
    uuid="0f0f0f0f-1111-2222-3333-444444444444",
    domain_type="pvh",
    kernel="/var/lib/xcp/guest/k'1\".gz",
    cmdline=HOSTILE,
    ramdisk="",
    memory_mib=16,
    maxmem_mib=32,
    vcpus=1,
    max_vcpus=2,
)


def _lines(text: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in text.splitlines())


def test_a_hostile_command_line_is_written_as_the_client_writes_it() -> None:
    config = replace(BASE, ramdisk="/i\\n")
    expected = xl_config_text(
        {
            "name": config.xl_name,
            "uuid": config.uuid,
            "type": "pvh",
            "kernel": config.kernel,
            "cmdline": HOSTILE,
            "memory": 16,
            "maxmem": 32,
            "vcpus": 1,
            "maxvcpus": 2,
            "on_poweroff": "preserve",
            "on_reboot": "preserve",
            "on_crash": "preserve",
            "ramdisk": "/i\\n",
        }
    )
    assert config.render() == expected
    assert 'cmdline = "a \\"quoted\\" \\\'one\\\' C:\\\\path\\nsecond line\\tend"\n' in expected


def test_the_emulator_and_the_clients_own_vm_config_agree_on_every_shared_key() -> None:
    # xl sees the uuid as the name (xenopsd's way); the hostile name label reaches only xenstore.
    config = BASE
    client = _lines(
        xl_config(
            VmSpec(name=HOSTILE, kernel=config.kernel, mode="pvh", memory_mib=16, cmdline=HOSTILE)
        )
    )
    emulator = _lines(config.render())
    assert client["name"] == xl_string(HOSTILE)
    assert emulator["name"] == xl_string(config.xl_name)
    for key in ("type", "kernel", "cmdline", "memory"):
        assert emulator[key] == client[key], key


def test_a_value_xl_cannot_be_given_is_each_callers_own_error() -> None:
    with pytest.raises(DomainError, match="control character"):
        replace(BASE, cmdline="bell\x07ok\x01").render()
    with pytest.raises(UsageError, match="control character"):
        xl_config_text({"cmdline": "bell\x07ok\x01"})
    # DEL was passed through raw before the emulator shared the client's writer.
    with pytest.raises(DomainError, match="control character"):
        replace(BASE, kernel="/k\x7f").render()


def test_the_dom0_copy_writes_the_same_config(tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(xapi_lab._emulator_tar())) as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / xapi_lab.EMULATOR_DIR.lstrip("/")
    assert (root / "xen_test_vm" / "xl_writer.py").is_file()
    assert not (root / "xen_test_vm" / "__init__.py").exists()
    script = (
        "import sys, xen_test_vm, xapi_emulator.domains as d\n"
        "assert list(xen_test_vm.__path__) == [sys.argv[1]], xen_test_vm.__path__\n"
        "c = d.DomainConfig('u', 'pv', '/k', sys.argv[2], '', 16, 16, 1, 1)\n"
        "sys.stdout.write(c.render())\n"
    )
    # -S: no site-packages, so only the unpacked copy can answer the imports, as in dom0
    # (xapi_lab._python_command: PYTHONPATH is the emulator's directory alone).
    proc = subprocess.run(
        [sys.executable, "-S", "-c", script, str(root / "xen_test_vm"), HOSTILE],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == DomainConfig("u", "pv", "/k", HOSTILE, "", 16, 16, 1, 1).render()


def test_pv_in_pvh_boots_the_kernel_in_the_shim() -> None:
    lines = _lines(replace(BASE, domain_type="pv_in_pvh").render())
    assert (lines["type"], lines["pvshim"]) == ('"pvh"', "1")
    assert (lines["memory"], lines["maxmem"]) == ("39", "55")  # + 23 + static_max // 90
    assert "pvshim" not in _lines(BASE.render())
