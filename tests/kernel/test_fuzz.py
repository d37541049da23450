"""Bounded libFuzzer run over the kernel's pure logic (kernel/fuzz/), with ASan and UBSan.

Longer runs: `invoke fuzz --seconds N`. The fuzzer checks the sanitizers and the promises of
protocol.h (see kernel/fuzz/fuzz_kernel_logic.c); a crash leaves its input in artifacts/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUZZ_DIR = ROOT / "kernel" / "fuzz"


def parse_report(text: str) -> dict[str, int]:
    """The Makefile's fuzz-report.txt: lines 'executions N', 'crashes N', 'exit N'."""
    report: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        report[key] = int(value) if value.strip() else -1
    return report


def test_fuzz_bounded_run_finds_no_crash(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "-s", "-C", str(FUZZ_DIR), f"O={tmp_path}", "run", "SECONDS=20", "RUNS=400000"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = parse_report((tmp_path / "fuzz-report.txt").read_text())
    print(f"fuzz: {report['executions']} executions, {report['crashes']} crashes")
    artifacts = sorted(p.name for p in (tmp_path / "artifacts").iterdir())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert report["crashes"] == 0 and artifacts == []
    assert report["exit"] == 0
    # It must have really run (a broken build or corpus would run nothing).
    assert report["executions"] > 10_000
