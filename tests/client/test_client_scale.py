"""The load generator's pure parts: percentiles, the name index, the report, the verdict.
(Its behaviour on a real host is in test_client_scale_lab.py.)"""

from __future__ import annotations

from typing import Any, cast

import pytest
from xen_test_vm.scale import DomainIndex, latency_summary, passed, percentile
from xen_test_vm.scale_report import human_report
from xen_test_vm.xenstore import Xenstore


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 1.0)) == (
        50.0,
        95.0,
        100.0,
    )
    assert percentile([7.0], 0.95) == 7.0
    assert latency_summary([]) == {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    assert latency_summary([3.0, 1.0, 2.0]) == {
        "count": 3, "p50": 2.0, "p95": 3.0, "p99": 3.0, "max": 3.0,
    }  # fmt: skip


class DomainTree:
    """/local/domain/<id>/name as a dict, counting the reads (a stand-in for xenstored)."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self.reads = 0

    def list(self, path: str) -> list[str]:
        assert path == "/local/domain"
        return ["0", *map(str, self.names)]

    def read(self, path: str) -> str | None:
        self.reads += 1
        return self.names.get(int(path.split("/")[3]))


def test_the_index_reads_each_domains_name_once_and_forgets_dead_ones() -> None:
    tree = DomainTree({1: "a", 2: "b", 3: "a"})
    index = DomainIndex()
    xs = cast(Xenstore, tree)
    assert index.domids(xs, "a") == [1, 3]
    assert index.domids(xs, "b") == [2] and tree.reads == 3
    del tree.names[1]
    tree.names[4] = "b"
    assert index.domids(xs, "a") == [3] and index.domids(xs, "b") == [2, 4]
    assert tree.reads == 4
    assert index.domids(xs, "gone") == []


def _report(**changes: Any) -> dict[str, Any]:
    latency = {"count": 2, "p50": 10.0, "p95": 20.0, "p99": 20.0, "max": 20.0}
    memory = {"dom0_available_kib": 2048, "xenstored_rss_kib": 4096, "xen_free_mib": 100}
    report: dict[str, Any] = {
        "host": "h", "run_id": "r", "toolstack": "xl", "mode": "pv", "count": 2,
        "concurrency": 2, "memory_mib": 4, "cmdline": "", "ready": 2, "shut_down": 2, "failed": 0,
        "left_behind": [], "seconds": {"all_ready": 4.0, "all_shut_down": 2.0},
        "throughput_vms_per_s": {"ready": 0.5, "shutdown": 1.0},
        "latency_ms": {"start": latency, "ready": latency, "shutdown": latency},
        "host_memory": {"before": memory, "all_ready": memory, "after": memory},
        "failures": [],
    }  # fmt: skip
    return report | changes


def test_the_human_report_has_a_row_per_phase_and_per_memory_reading() -> None:
    text = human_report(_report())
    assert "2 VMs on h (xl, pv, 4 MiB each, 2 at a time)" in text
    rows = text.splitlines()
    phases = [ln.split()[0] for ln in rows if ln.startswith(("start", "ready", "shut"))]
    assert phases == ["start", "ready", "shutdown"]
    assert "all ready after 4.0 s (0.5 VMs/s)" in text
    assert "xenstored resident  4.0 MiB" in text and "Xen free" in text


@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        ({}, True),
        ({"failed": 1, "shut_down": 1}, False),
        ({"left_behind": ["xtvm-r-0001"]}, False),
        ({"shut_down": 1}, False),
    ],
)
def test_a_run_passes_only_if_every_vm_went_through_and_none_is_left(
    changes: dict[str, Any], ok: bool
) -> None:
    assert passed(_report(**changes)) is ok


def test_failures_are_listed_with_their_phase() -> None:
    failures = [{"name": f"xtvm-r-{i:04d}", "phase": "start", "error": "boom"} for i in range(12)]
    text = human_report(_report(failures=failures, failed=12))
    assert "xtvm-r-0009  start  boom" in text and "xtvm-r-0010" not in text
    assert "... and 2 more (--json)" in text
