"""PV-in-PVH through the XAPI EMULATOR (lab/xapi_emulator: not XAPI; no real XenServer or
XCP-ng was available): `domain_type` pv_in_pvh boots the PV kernel inside Xen's PV shim, as
xenopsd does, and the toolstack rows that suspend, checkpoint and migrate it pass there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from xen_test_lab import xapi_lab
from xen_test_lab.lab import LabHost

from tests.client.test_client_lab import cli, leftovers
from tests.client.test_client_xapi_lab import xapi_host

pytestmark = pytest.mark.lab
__all__ = ["xapi_host"]  # the module fixture: the lab's dom0 as an emulated XAPI host

ROWS = [
    "boot-status",
    "request-reboot",
    "clean-shutdown",
    "suspend-resume",
    "checkpoint",
    "migrate",
]


def test_xapi_pv_in_pvh_rows_on_the_emulator(xapi_host: LabHost, client_kernel: Path) -> None:
    xapi_host.install_shim()
    only = [arg for name in ROWS for arg in ("--only", name)]
    # --only takes prefixes: leave out the rows it would also pick (one waits xenopsd's 60 s).
    only += ["--skip", "clean-shutdown-no-ack", "--skip", "migrate-to-destination"]
    proc = cli(
        xapi_host, "smoke", "--kernel", str(client_kernel), "--mode", "pv_in_pvh", *only, "--json"
    )
    assert proc.returncode == 0, (
        proc.stdout[-3000:] + proc.stderr[-2000:] + xapi_lab.log(xapi_host)[-2000:]
    )
    report = json.loads(proc.stdout)
    assert (report["toolstack"], report["mode"]) == ("xapi", "pv_in_pvh")
    assert {s["name"]: s["outcome"] for s in report["scenarios"]} == dict.fromkeys(ROWS, "pass")
    assert leftovers(xapi_host) == []


def test_xapi_pv_in_pvh_vm_is_a_pvh_domain_running_the_shim(
    xapi_host: LabHost, client_kernel: Path
) -> None:
    xapi_host.install_shim()
    name = "xtvm-xapi-shim"
    started = cli(
        xapi_host, "install", "--kernel", str(client_kernel), "--name", name, "--mode",
        "pv_in_pvh", "--memory", "16", "--start", "--json",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr + xapi_lab.log(xapi_host)[-2000:]
        domid = json.loads(started.stdout)["domid"]
        domain = json.loads(xapi_host.run(f"xl list -l {domid}").stdout)[0]["config"]
        assert domain["c_info"]["type"] == "pvh"
        assert domain["b_info"]["type.pvh"]["pvshim"] == "True"  # a libxl defbool
        # xenopsd's memory model: the shim's 23 MiB on top of the VM's 16.
        assert domain["b_info"]["max_memkb"] == (16 + 23) * 1024
        state = xapi_host.run(f"xenstore-read /local/domain/{domid}/data/test-vm/state").stdout
        assert state.strip() == "ready"
    finally:
        assert cli(xapi_host, "destroy", name).returncode == 0
