"""`invoke bench`: measure the lab and the test kernel on real Xen; write a JSON report."""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xen_test_vm.errors import report_error

from .errors import LabError
from .lab import LabHost, running_lab

BENCH_HYPERVISOR = "shadow"
LAB_READY_TARGET_SECONDS = 8.0  # issue 10: dom0 ready within 8 s of QEMU starting
# Sections other parts of the project contribute: module name -> measure(host, image, report).
SECTIONS = ("xen_test_lab.bench_kernel", "xen_test_lab.bench_testing")

Report = dict[str, Any]


def latency_summary(microseconds: list[int]) -> Report:
    """Median, p90, p95, min and max in milliseconds of latency samples given in microseconds."""
    values = sorted(us / 1000 for us in microseconds)
    return {
        "samples": len(values),
        "median_ms": round(statistics.median(values), 3),
        "p90_ms": round(values[int(0.9 * (len(values) - 1))], 3),
        "p95_ms": round(values[int(0.95 * (len(values) - 1))], 3),
        "min_ms": round(values[0], 3),
        "max_ms": round(values[-1], 3),
    }


def _machine() -> Report:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "qemu": subprocess.run(
            ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[:1],
    }


def phase_durations(ends: list[dict[str, float]]) -> Report:
    """Median seconds each boot phase took, from boots' phase end times (LabHost.boot_phases,
    in boot order; a phase starts where the one before it ended, the first at QEMU start)."""
    durations: dict[str, list[float]] = {}
    for boot in ends:
        previous = 0.0
        for phase, end in boot.items():
            durations.setdefault(phase, []).append(end - previous)
            previous = end
    return {phase: round(statistics.median(values), 2) for phase, values in durations.items()}


def measure_lab_boot(boots: int) -> tuple[Report, list[float]]:
    """Boot the lab `boots` times; seconds from QEMU start to dom0 ready (xl info over SSH),
    and where they went (phase_seconds_median: xen, dom0_kernel, dom0_init, ssh)."""
    ready: list[float] = []
    init: list[float] = []
    phases: list[dict[str, float]] = []
    accel = "tcg"
    for _ in range(boots):
        with running_lab() as host:
            ready.append(round(host.ready_seconds, 2))
            init.append(round(host.init_seconds, 2))
            phases.append(host.boot_phases)
            accel = host.accel
    median = statistics.median(ready)
    return {
        "accel": accel,
        "dom0_ready_seconds": ready,
        "dom0_ready_median_seconds": median,
        "dom0_init_done_seconds": init,
        "phase_ends_seconds": phases,
        "phase_seconds_median": phase_durations(phases),
        "target_seconds": LAB_READY_TARGET_SECONDS,
        "meets_target": median <= LAB_READY_TARGET_SECONDS,
    }, ready


def _xen_report(host: LabHost) -> Report:
    """The booted Xen: xl info's version and virt_caps, the Debian versions of the hypervisor
    and of dom0's tools (mixed_versions says when they differ) and the hypervisor's build time
    (hypervisor_built_in_this_run false: measured when the cache got it)."""
    lines = host.run("xl info").stdout.splitlines()
    info = {key.strip(): value.strip() for key, _, value in (ln.partition(":") for ln in lines)}
    return {
        **host.xen,
        "xl_info_xen_version": f"{info.get('xen_major')}.{info.get('xen_minor')}"
        f"{info.get('xen_extra', '')}",
        "virt_caps": info.get("virt_caps", ""),
    }


def _run_sections(host: LabHost, kernel_image: Path | None, report: Report) -> None:
    for name in SECTIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            report.setdefault("skipped", []).append(f"{name}: not built yet")
            continue
        if kernel_image is None:
            report.setdefault("skipped", []).append(f"{name}: no kernel image")
            continue
        module.measure(host, kernel_image, report)


BENCH_PARTS = ("boot", "kernel", "pair", "scale")


def run_bench(
    out: Path,
    kernel_builder: Callable[[], object] | None = None,
    boots: int = 3,
    parts: tuple[str, ...] = BENCH_PARTS,
    scale_xenstoreds: tuple[str, ...] = ("cxenstored",),
) -> int:
    """Run the benchmarks of `parts` and write the JSON report to `out`; returns an exit status.

    boot: dom0 ready time; kernel: size, latencies, migration, on both xenstoreds; pair: live
    migration from host to host; scale: the load generator's 500-VM run.
    """
    unknown = sorted(set(parts) - set(BENCH_PARTS))
    if unknown:
        report_error("bench", f"unknown part {', '.join(unknown)}: choose from {BENCH_PARTS}")
        return 2
    report: Report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report["machine"] = _machine()
    try:
        if "boot" in parts:
            report["lab"], _ = measure_lab_boot(boots)
        kernel_image: Path | None = None
        if kernel_builder is not None:
            kernel_builder()
            candidate = Path(os.environ.get("XEN_TEST_VM_ROOT", ".")) / "build" / "test-vm.xen.gz"
            kernel_image = candidate if candidate.exists() else None
        if "kernel" in parts:
            _kernel_parts(kernel_image, report)
        if "pair" in parts and kernel_image is not None:
            from .bench_pair import measure_pair

            report["pair"] = measure_pair(kernel_image, hypervisor=BENCH_HYPERVISOR)
        if "scale" in parts and kernel_image is not None:
            from .bench_scale import measure_scale

            report["scale"] = measure_scale(kernel_image, xenstoreds=scale_xenstoreds)
    except LabError as exc:
        report_error("bench", str(exc))
        return 1
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"bench: report written to {out}", file=sys.stderr)
    return 0


def _kernel_parts(kernel_image: Path | None, report: Report) -> None:
    # The shadow-paging hypervisor: PV live migration needs it (issue 10).
    with running_lab(hypervisor=BENCH_HYPERVISOR) as host:
        report["xen"] = _xen_report(host)
        _run_sections(host, kernel_image, report)
    if kernel_image is not None:
        from .bench_kernel import measure_acks

        # XenServer's and XCP-ng's xenstored: the acknowledgement latencies again on it.
        with running_lab(hypervisor=BENCH_HYPERVISOR, xenstored="oxenstored") as host:
            report["oxenstored"] = measure_acks(host, kernel_image)
