"""The load generator's report as a human reads it: latencies, throughput, host memory."""

from __future__ import annotations

from typing import Any

from .output import table

PHASE_NAMES = {"start": "start", "ready": "ready", "shutdown": "shutdown"}
MEMORY_ROWS = (
    ("dom0 available", "dom0_available_kib", 1024),
    ("xenstored resident", "xenstored_rss_kib", 1024),
    ("Xen free", "xen_free_mib", 1),
)
FAILURES_SHOWN = 10


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mib(value: int | None, per_mib: int) -> str:
    return "-" if value is None else f"{value / per_mib:.1f} MiB"


def human_report(report: dict[str, Any]) -> str:
    """Tables: one row per phase, one per memory reading, then the first failures."""
    failed_in = {phase: 0 for phase in PHASE_NAMES}
    for failure in report["failures"]:
        failed_in[failure["phase"]] = failed_in.get(failure["phase"], 0) + 1
    rows = []
    for phase in PHASE_NAMES:
        latency = report["latency_ms"][phase]
        rows.append(
            [
                phase,
                str(latency["count"]),
                str(failed_in[phase]),
                *(_ms(latency[key]) for key in ("p50", "p95", "p99", "max")),
            ]
        )
    lines = [
        f"{report['count']} VMs on {report['host']} ({report['toolstack']}, {report['mode']}, "
        f"{report['memory_mib']} MiB each, {report['concurrency']} at a time)",
        "",
        table(rows, ["phase", "done", "failed", "p50 ms", "p95 ms", "p99 ms", "max ms"]),
        "",
    ]
    seconds, rate = report["seconds"], report["throughput_vms_per_s"]
    if "all_ready" in seconds:
        lines.append(f"all ready after {seconds['all_ready']:.1f} s ({rate['ready']} VMs/s)")
    if "all_shut_down" in seconds:
        lines.append(
            f"all shut down after {seconds['all_shut_down']:.1f} s ({rate['shutdown']} VMs/s)"
        )
    readings = [name for name in ("before", "all_ready", "after") if name in report["host_memory"]]
    if readings:
        memory = [
            [label, *(_mib(report["host_memory"][r].get(key), unit) for r in readings)]
            for label, key, unit in MEMORY_ROWS
        ]
        lines += ["", table(memory, ["memory", *(r.replace("_", " ") for r in readings)])]
    if report["failures"]:
        shown = report["failures"][:FAILURES_SHOWN]
        lines += [
            "",
            table(
                [[f["name"], f["phase"], f["error"]] for f in shown],
                ["failed VM", "phase", "error"],
            ),
        ]
        if len(report["failures"]) > FAILURES_SHOWN:
            lines.append(f"... and {len(report['failures']) - FAILURES_SHOWN} more (--json)")
    if report["left_behind"]:
        lines += ["", f"left behind: {', '.join(report['left_behind'])}"]
    return "\n".join(lines)
