"""`invoke bench`: the load generator's run of 500 test VMs on a lab of its own (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xen_test_vm.scale import as_json, run_scale
from xen_test_vm.session import ConnectOptions, Session

from .lab import running_lab

SCALE_COUNT = 500
SCALE_CONCURRENCY = 4
# 500 guests of 4 MiB take ~2.1 GiB of Xen's memory (4.1 MiB each with their page tables and
# rings), and each costs dom0 ~0.7 MiB (xl's monitoring process per domain, measured): the
# everyday lab (1536 MiB, dom0 512) holds ~80 of them.
SCALE_LAB_MIB = 4096
SCALE_DOM0_MIB = 1024
XENSTOREDS = ("cxenstored", "oxenstored")


def measure_scale(kernel_image: Path, count: int = SCALE_COUNT) -> dict[str, Any]:
    """The scale run on each xenstored, each on a freshly booted lab (xl, PV, 4 MiB each)."""
    report: dict[str, Any] = {
        "lab": {"qemu_mib": SCALE_LAB_MIB, "dom0_mib": SCALE_DOM0_MIB, "toolstack": "xl"},
    }
    for xenstored in XENSTOREDS:
        with running_lab(
            memory_mib=SCALE_LAB_MIB, dom0_mib=SCALE_DOM0_MIB, xenstored=xenstored
        ) as host:
            options = ConnectOptions(host=host.ssh_alias, ssh_config=host.ssh_config)
            with Session(options) as session:
                run = run_scale(session, kernel_image, count, concurrency=SCALE_CONCURRENCY)
                report[xenstored] = as_json(run)
    return report
