"""`xen-test-vm scale` on the real lab (xl): every VM ready and shut down, the host's memory
seen to hold them all at once, failures reported, and nothing left behind on any way out."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from xen_test_lab.lab import LabHost
from xen_test_vm.errors import ExitCode

from tests.client.test_client_lab import cli, leftovers, popen_cli, wait_for_trace

pytestmark = pytest.mark.lab

COUNT = 8
MEMORY_MIB = 4


def test_scale_readies_and_shuts_down_every_vm(lab_host: LabHost, client_kernel: Path) -> None:
    proc = cli(
        lab_host, "scale", "--kernel", str(client_kernel), "--count", str(COUNT),
        "--concurrency", "3", "--memory", str(MEMORY_MIB), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert (report["ready"], report["shut_down"], report["failed"]) == (COUNT, COUNT, 0)
    assert report["left_behind"] == [] and report["failures"] == []
    assert leftovers(lab_host, f"xtvm-{report['run_id']}") == []
    for phase in ("start", "ready", "shutdown"):
        latency = report["latency_ms"][phase]
        assert latency["count"] == COUNT
        assert 0 < latency["p50"] <= latency["p95"] <= latency["max"]
    memory = report["host_memory"]
    # All of them ran at once: Xen lent each its memory, and took it all back afterwards.
    held = memory["before"]["xen_free_mib"] - memory["all_ready"]["xen_free_mib"]
    assert held >= COUNT * MEMORY_MIB, memory
    assert memory["after"]["xen_free_mib"] >= memory["before"]["xen_free_mib"] - 1, memory
    assert memory["all_ready"]["xenstored_rss_kib"] > 0
    assert report["throughput_vms_per_s"]["ready"] > 0


def test_scale_reports_refused_starts_and_leaves_nothing(
    lab_host: LabHost, client_kernel: Path
) -> None:
    # More memory than the lab has: xl refuses every start (a toolstack outcome, not a bug).
    proc = cli(
        lab_host, "scale", "--kernel", str(client_kernel), "--count", "3", "--memory",
        "65536", "--json",
    )  # fmt: skip
    assert proc.returncode == ExitCode.FAILED, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert (report["ready"], report["failed"]) == (0, 3)
    assert {f["phase"] for f in report["failures"]} == {"start"}
    assert "3 of 3 VMs failed" in proc.stderr and "Traceback" not in proc.stderr
    assert report["left_behind"] == []
    assert leftovers(lab_host, f"xtvm-{report['run_id']}") == []


def _scale_in_background(
    lab_host: LabHost, client_kernel: Path
) -> tuple[subprocess.Popen[str], str]:
    proc = popen_cli(
        lab_host, "scale", "--kernel", str(client_kernel), "--count", "40", "--concurrency", "2",
    )  # fmt: skip
    trace = "".join(wait_for_trace(proc, r"rc=0\] xl create "))
    trace += "".join(wait_for_trace(proc, r"rc=0\] xl create "))
    prefix = trace.split("/vms/", 1)[1][:14]  # xtvm-<run id>
    assert prefix.startswith("xtvm-") and leftovers(lab_host, prefix), trace[-2000:]
    return proc, prefix


def test_ctrl_c_during_scale_destroys_every_vm(lab_host: LabHost, client_kernel: Path) -> None:
    proc, prefix = _scale_in_background(lab_host, client_kernel)
    try:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, stderr[-2000:]
    assert "Traceback" not in stderr
    assert leftovers(lab_host, prefix) == []


def test_a_killed_scale_run_is_cleaned_up_by_the_host(
    lab_host: LabHost, client_kernel: Path
) -> None:
    proc, prefix = _scale_in_background(lab_host, client_kernel)
    proc.kill()  # SIGKILL: the client does nothing more; its SSH connection closes
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 180
    while leftovers(lab_host, prefix) and time.monotonic() < deadline:
        time.sleep(2)
    assert leftovers(lab_host, prefix) == []
