"""invoke tasks: the project's front door (`invoke --list`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Context, task

ROOT = Path(__file__).resolve().parent
for _sub in ("client", "lab", "release"):
    sys.path.insert(0, str(ROOT / _sub))

BUILD_DIR = ROOT / "build"
KERNEL_IMAGE = BUILD_DIR / "test-vm.xen.gz"


@task
def build(c: Context, out: str = str(BUILD_DIR)) -> None:
    """Build the test kernel into build/test-vm.xen.gz (reproducible)."""
    c.run(f"make -s -C {ROOT / 'kernel'} O={Path(out).resolve()} image", pty=False)
    print(Path(out).resolve() / "test-vm.xen.gz")


@task
def lint(c: Context) -> None:
    """Run ruff and mypy over the Python code."""
    with c.cd(str(ROOT)):
        c.run(f"{sys.executable} -m ruff check .")
        c.run(f"{sys.executable} -m ruff format --check .")
        c.run(f"{sys.executable} -m mypy")


@task(help={"k": "only tests matching this pytest -k expression", "no_lab": "skip lab tests"})
def test(c: Context, k: str = "", no_lab: bool = False) -> None:
    """Run the whole test suite: lint, type check, unit, kernel and lab tests."""
    lint(c)
    args = ["-q"]
    if k:
        args += ["-k", repr(k)]
    if no_lab:
        args += ["-m", "'not lab'"]
    with c.cd(str(ROOT)):
        c.run(f"{sys.executable} -m pytest {' '.join(args)}", pty=False)


@task(
    help={
        "detach": "boot in the background and return",
        "stop": "stop a detached lab",
        "status": "show the detached lab, if any",
    }
)
def lab(c: Context, detach: bool = False, stop: bool = False, status: bool = False) -> None:
    """Boot the local Xen lab (Xen + Debian dom0 in QEMU) and print how to ssh in."""
    from xen_test_lab.cli import lab_command

    raise SystemExit(lab_command(detach=detach, stop=stop, status=status))


@task(help={"out": "where to write the JSON report"})
def bench(c: Context, out: str = "bench.json") -> None:
    """Measure lab boot, kernel size and latencies; write a JSON report."""
    from xen_test_lab.bench import run_bench

    raise SystemExit(run_bench(Path(out), kernel_builder=lambda: build(c)))


@task(help={"seconds": "how long to fuzz", "out": "build directory (keeps the grown corpus)"})
def fuzz(c: Context, seconds: int = 300, out: str = str(BUILD_DIR / "fuzz")) -> None:
    """Fuzz the kernel's JSON reader, protocol state machine and xenstore codec (libFuzzer)."""
    c.run(f"make -s -C {ROOT / 'kernel' / 'fuzz'} O={Path(out).resolve()} run SECONDS={seconds}")


os.environ.setdefault("XEN_TEST_VM_ROOT", str(ROOT))
