"""`invoke bench`: the load generator's run of 500 test VMs on a lab of its own (issue 14)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from xen_test_vm.scale import as_json, latency_summary, run_scale
from xen_test_vm.session import ConnectOptions, Session

from .lab import running_lab

SCALE_COUNT = 500
SCALE_CONCURRENCY = 4
# 500 guests of 4 MiB take ~2.1 GiB of Xen's memory (4.1 MiB each with their page tables and
# rings), and each costs dom0 ~0.7 MiB (xl's monitoring process per domain, measured): the
# everyday lab (1536 MiB, dom0 512) holds ~80 of them.
SCALE_LAB_MIB = 4096
SCALE_DOM0_MIB = 1024
# One xenstored by default: a 500-VM run takes most of an hour under TCG (2026-12-04: 306 VMs
# were ready after 22 min, each start slower as domains accumulate).
DEFAULT_XENSTOREDS = ("cxenstored",)
PROGRESS_EVERY = 50
BLOCK = 100


def _progress(started: float) -> Any:
    def report(phase: str, done: int, total: int) -> None:
        if done % PROGRESS_EVERY == 0 or done == total:
            elapsed = time.monotonic() - started
            print(f"bench: scale {phase} {done}/{total} after {elapsed:.0f} s", file=sys.stderr)

    return report


def measure_scale(
    kernel_image: Path, count: int = SCALE_COUNT, xenstoreds: tuple[str, ...] = DEFAULT_XENSTOREDS
) -> dict[str, Any]:
    """The scale run on each xenstored, each on a freshly booted lab (xl, PV, 4 MiB each)."""
    report: dict[str, Any] = {
        "lab": {"qemu_mib": SCALE_LAB_MIB, "dom0_mib": SCALE_DOM0_MIB, "toolstack": "xl"},
    }
    for xenstored in xenstoreds:
        with running_lab(
            memory_mib=SCALE_LAB_MIB, dom0_mib=SCALE_DOM0_MIB, xenstored=xenstored
        ) as host:
            options = ConnectOptions(host=host.ssh_alias, ssh_config=host.ssh_config)
            with Session(options) as session:
                run = run_scale(
                    session,
                    kernel_image,
                    count,
                    concurrency=SCALE_CONCURRENCY,
                    progress=_progress(time.monotonic()),
                )
                result = as_json(run)
        # How the ready latency moves as domains accumulate: per block of VMs, in start order.
        result["ready_ms_by_block"] = {
            f"{first}-{first + BLOCK - 1}": latency_summary(
                [r.ready_ms for r in run.vms[first : first + BLOCK] if r.ready_ms is not None]
            )
            for first in range(0, count, BLOCK)
        }
        report[xenstored] = result
    return report
