"""invoke tasks: the project's front door (`invoke --list`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

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
        "port": "SSH port on 127.0.0.1 (default: a free one)",
        "accel": "auto (KVM only if it can run Xen), tcg or kvm",
        "memory": "QEMU RAM in MiB",
    }
)
def lab(
    c: Context,
    detach: bool = False,
    stop: bool = False,
    status: bool = False,
    port: int = 0,
    accel: str = "auto",
    memory: int = 1536,
) -> None:
    """Boot the local Xen lab (Xen + Debian dom0 in QEMU) and print how to ssh in."""
    from xen_test_lab.cli import lab_command

    code = lab_command(detach, stop, status, port or None, accel, memory)
    if code:
        raise SystemExit(code)


@task(help={"out": "where to write the JSON report"})
def bench(c: Context, out: str = "bench.json") -> None:
    """Measure lab boot, kernel size and latencies; write a JSON report."""
    from xen_test_lab.bench import run_bench

    raise SystemExit(run_bench(Path(out), kernel_builder=lambda: build(c)))


@task(
    help={
        "host": "[user@]host or ssh_config alias (default: boot the local lab)",
        "ssh_config": "ssh_config file for --host",
        "kernel": "use this kernel image instead of building build/test-vm.xen.gz",
        "only": "scenarios or groups to run, comma-separated",
        "skip": "scenarios or groups to leave out, comma-separated",
        "json": "print a JSON report instead of the table",
        "junit": "also write JUnit XML to this file",
        "jobs": "scenarios with their own VM run this many at a time",
    }
)
def smoke(
    c: Context,
    host: str = "",
    ssh_config: str = "",
    kernel: str = "",
    only: str = "",
    skip: str = "",
    json: bool = False,
    junit: str = "",
    jobs: int = 3,
) -> None:
    """Run the smoke matrix against --host, or against the local lab booted for it."""
    from xen_test_vm.lab_smoke import SmokeOptions, smoke_task

    options = SmokeOptions(Path(kernel) if kernel else KERNEL_IMAGE, only, skip, json, junit, jobs)
    builder = None if kernel else lambda: build(c)
    raise SystemExit(smoke_task(options, host=host, ssh_config=ssh_config, build_kernel=builder))


@task(help={"seconds": "how long to fuzz", "out": "build directory (keeps the grown corpus)"})
def fuzz(c: Context, seconds: int = 300, out: str = str(BUILD_DIR / "fuzz")) -> None:
    """Fuzz the kernel's JSON reader, protocol state machine and xenstore codec (libFuzzer)."""
    c.run(f"make -s -C {ROOT / 'kernel' / 'fuzz'} O={Path(out).resolve()} run SECONDS={seconds}")


@task(
    help={
        "version": "the release version and tag, e.g. 0.1.5",
        "repo": "GitHub owner/name (default: $GITHUB_REPOSITORY or the origin remote)",
        "draft": "upload and verify, but leave the release as an unpublished draft",
        "dry_run": "check and report what would happen; change nothing on GitHub",
        "api_url": "GitHub API URL (GitHub Enterprise: https://HOST/api/v3)",
        "token_file": "read the token from this file instead of $GITHUB_TOKEN",
    }
)
def release(
    c: Context,
    version: str,
    repo: str = "",
    draft: bool = False,
    dry_run: bool = False,
    api_url: str = "https://api.github.com",
    token_file: str = "",
) -> None:
    """Publish build/test-vm.xen.gz as GitHub release VERSION (run as `invoke build release`)."""
    from xen_test_release.cli import release_main

    code = release_main(
        ROOT,
        version=version,
        repo=repo,
        draft=draft,
        dry_run=dry_run,
        api_url=api_url,
        token_file=token_file,
    )
    if code:
        raise SystemExit(code)


@task(
    help={
        "version": "the release version, e.g. 0.1.5",
        "repo": "GitHub owner/name (default: xapi-project/xen-test-vm)",
        "dest": "directory to save test-vm.xen.gz in",
        "base_url": "download site (default: https://github.com)",
    }
)
def download(
    c: Context,
    version: str,
    repo: str = "",
    dest: str = ".",
    base_url: str = "https://github.com",
) -> None:
    """Download a released test-vm.xen.gz and check it against the release's SHA256SUMS."""
    from xen_test_release.cli import download_main

    code = download_main(ROOT, version=version, repo=repo, dest=dest, base_url=base_url)
    if code:
        raise SystemExit(code)


@task(
    help={
        "version": "the release to check, e.g. 0.1.5 (its tag must be fetched)",
        "repo": "GitHub owner/name (default: xapi-project/xen-test-vm)",
        "base_url": "download site (default: https://github.com)",
    }
)
def verify(c: Context, version: str, repo: str = "", base_url: str = "https://github.com") -> None:
    """Rebuild tag VERSION from a clean checkout and compare with the published image."""
    from xen_test_release.cli import verify_main

    code = verify_main(ROOT, version=version, repo=repo, base_url=base_url)
    if code:
        raise SystemExit(code)


os.environ.setdefault("XEN_TEST_VM_ROOT", str(ROOT))
