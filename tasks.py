"""invoke tasks: the project's front door (`invoke --list`)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke.context import Context
from invoke.tasks import task as invoke_task

ROOT = Path(__file__).resolve().parent
for _sub in ("client", "lab", "release"):
    sys.path.insert(0, str(ROOT / _sub))


F = TypeVar("F", bound=Callable[..., Any])


def task(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """invoke's @task without its traps: no positional arguments (`invoke download --help`
    would be taken for a version) and no automatic short flags (`-h` would be --host, `-b` jobs).
    """
    kwargs.setdefault("positional", [])
    kwargs.setdefault("auto_shortflags", False)
    decorator: Callable[[F], F] = invoke_task(*args, **kwargs)
    return decorator


def required(task_name: str, value: str, option: str, example: str) -> str:
    """An option the task cannot run without: one error line and exit status 2 when missing."""
    from xen_test_vm.errors import ExitCode, report_error

    if not value:
        report_error(task_name, f"{option} is required, e.g. {option} {example}")
        raise SystemExit(ExitCode.USAGE)
    return value


def release_version(task_name: str, version: str) -> str:
    """The --version the release tool's tasks (release, download, verify) cannot run without."""
    return required(task_name, version, "--version", "0.1.5")


def exit_with(code: int) -> None:
    """End the task with exit status code, unless it is 0 (then later tasks still run)."""
    if code:
        raise SystemExit(code)


BUILD_DIR = ROOT / "build"
KERNEL_IMAGE = BUILD_DIR / "test-vm.xen.gz"


@task(help={"out": "output directory (default: build/)"})
def build(c: Context, out: str = str(BUILD_DIR)) -> None:
    """Build the test kernel into build/test-vm.xen.gz (reproducible)."""
    c.run(f"make -s -C {ROOT / 'kernel'} O={Path(out).resolve()} image", pty=False)
    print(Path(out).resolve() / "test-vm.xen.gz")


@task()
def lint(c: Context) -> None:
    """Run ruff and mypy over the Python code."""
    with c.cd(str(ROOT)):
        c.run(f"{sys.executable} -m ruff check .")
        c.run(f"{sys.executable} -m ruff format --check .")
        c.run(f"{sys.executable} -m mypy")


XENSTORED_CHOICES = ("both", "cxenstored", "oxenstored")
# What only the shadow-paging hypervisor can run: PV live migration, on one host and two.
SHADOW_TESTS = ["tests/lab/test_migration.py", "tests/lab/test_two_hosts.py"]


@task(
    help={
        "k": "only tests matching this pytest -k expression",
        "no_lab": "skip lab tests",
        "xenstored": "both (default): the suite on cxenstored, then the kernel lab tests again "
        "on oxenstored (but those marked any_xenstored), then PV live migration on a shadow-paging "
        "lab; cxenstored or oxenstored: the whole suite on that one",
    }
)
def test(c: Context, k: str = "", no_lab: bool = False, xenstored: str = "both") -> None:
    """Run the whole test suite: lint, type check, unit, kernel and lab tests."""
    from xen_test_vm.errors import ExitCode, report_error

    if xenstored not in XENSTORED_CHOICES:
        choices = ", ".join(XENSTORED_CHOICES)
        report_error("test", f"--xenstored must be one of {choices}, not {xenstored!r}")
        raise SystemExit(ExitCode.USAGE)
    lint(c)
    # The slowest tests in every log: CI has 90 minutes, and the lab is where they go.
    args = ["-q", "--durations=25"]
    if k:
        args += ["-k", repr(k)]
    if no_lab:
        args += ["-m", "'not lab'"]
    first = "cxenstored" if xenstored == "both" else xenstored
    with c.cd(str(ROOT)):
        failed = c.run(
            f"{sys.executable} -m pytest {' '.join(args)}",
            pty=False,
            warn=True,
            env={"XEN_TEST_VM_XENSTORED": first},
        ).failed
        if xenstored == "both" and not no_lab:
            # XenServer's and XCP-ng's xenstored: the guest's side of the protocol again.
            print("test: the kernel lab tests again, on oxenstored", file=sys.stderr, flush=True)
            # Tests of memory and CPU faults ran on cxenstored already: CI's 90 minutes.
            lab_only = ["-q", "--durations=15", "-m", "'lab and not any_xenstored'"]
            lab_only += [*(["-k", repr(k)] if k else []), "tests/kernel"]
            again = c.run(
                f"{sys.executable} -m pytest {' '.join(lab_only)}",
                pty=False,
                warn=True,
                env={"XEN_TEST_VM_XENSTORED": "oxenstored"},
            )
            # 5: -k selected no kernel lab test, which is no failure.
            failed = failed or again.return_code not in (0, 5)
            # PV live migration needs the shadow-paging build, which slows down over a whole
            # suite (README): a fresh lab of its own runs just the tests that need it.
            print("test: PV live migration, on the shadow build", file=sys.stderr, flush=True)
            shadow = ["-q", "--durations=10", "-m", "lab", *(["-k", repr(k)] if k else [])]
            shadow += SHADOW_TESTS
            migrated = c.run(
                f"{sys.executable} -m pytest {' '.join(shadow)}",
                pty=False,
                warn=True,
                env={"XEN_TEST_VM_XENSTORED": "oxenstored", "XEN_TEST_VM_HYPERVISOR": "shadow"},
            )
            failed = failed or migrated.return_code not in (0, 5)
    if failed:
        raise SystemExit(ExitCode.FAILED)


@task(
    help={
        "detach": "boot in the background and return",
        "stop": "stop a detached lab",
        "status": "show the detached lab, if any",
        "port": "SSH port on 127.0.0.1 (default: a free one)",
        "accel": "auto (KVM only if it can run Xen), tcg or kvm",
        "memory": "QEMU RAM in MiB",
        "hypervisor": "shadow (Debian's xen source built with shadow paging: live migration) "
        "or debian (the binary package's, no shadow paging)",
        "xenstored": "cxenstored (C) or oxenstored (OCaml, as XenServer and XCP-ng run it)",
        "hosts": "1, or 2 hosts whose dom0s are linked only through QEMU on 127.0.0.1",
        "xapi": "run the XAPI emulator in dom0 (not XAPI); with --hosts 2 as a pool",
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
    hypervisor: str = "shadow",
    xenstored: str = "cxenstored",
    hosts: int = 1,
    xapi: bool = False,
) -> None:
    """Boot the local Xen lab (Xen + Debian dom0 in QEMU) and print how to ssh in."""
    from xen_test_lab.cli import lab_command

    exit_with(
        lab_command(
            detach, stop, status, port or None, accel, memory, hypervisor, xenstored, hosts, xapi
        )
    )


@task(
    help={
        "out": "where to write the JSON report",
        "only": "comma-separated parts: boot, kernel, pair, scale (default: all)",
        "scale_xenstored": "cxenstored, oxenstored or both for the scale part (most of an hour "
        "each)",
    }
)
def bench(
    c: Context, out: str = "bench.json", only: str = "", scale_xenstored: str = "cxenstored"
) -> None:
    """Measure lab boot, kernel, host-to-host migration and a 500-VM scale run; write JSON."""
    from xen_test_lab.bench import BENCH_PARTS, run_bench
    from xen_test_vm.errors import ExitCode, report_error

    parts = tuple(p.strip() for p in only.split(",") if p.strip()) or BENCH_PARTS
    xenstoreds = {"both": ("cxenstored", "oxenstored")}.get(scale_xenstored, (scale_xenstored,))
    if not set(xenstoreds) <= {"cxenstored", "oxenstored"}:
        choices = "cxenstored, oxenstored or both"
        report_error("bench", f"--scale-xenstored must be {choices}, not {scale_xenstored!r}")
        raise SystemExit(ExitCode.USAGE)
    raise SystemExit(
        run_bench(
            Path(out), kernel_builder=lambda: build(c), parts=parts, scale_xenstoreds=xenstoreds
        )
    )


@task(
    help={
        "host": "[user@]host[:port] or ssh_config alias (default: boot the local lab)",
        "ssh_config": "ssh_config file for --host",
        "kernel": "use this kernel image instead of building build/test-vm.xen.gz",
        "only": "scenarios or groups to run, comma-separated",
        "skip": "scenarios or groups to leave out, comma-separated",
        "json": "print a JSON report instead of the table",
        "junit": "also write JUnit XML to this file",
        "jobs": "scenarios with their own VM run this many at a time",
        "list": "list the selected scenarios and exit (no lab, no build)",
        "hypervisor": "the local lab's hypervisor: shadow (live migration) or debian",
        "xenstored": "the local lab's xenstored: cxenstored or oxenstored",
        "hosts": "the local lab's hosts: 2 also runs the migrate-to-destination row",
        "destination": "with --host: another host or pool member for migrate-to-destination",
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
    list: bool = False,
    hypervisor: str = "shadow",
    xenstored: str = "cxenstored",
    hosts: int = 1,
    destination: str = "",
) -> None:
    """Run the smoke matrix against --host, or against the local lab booted for it."""
    image = None if list else Path(kernel) if kernel else KERNEL_IMAGE
    args = smoke_cli_args(image, only, skip, json, junit, jobs) + (["--list"] if list else [])
    if destination:
        args += ["--destination", destination]
    raise SystemExit(
        smoke_task(
            args,
            host=host,
            ssh_config=ssh_config,
            build_kernel=None if kernel or list else lambda: build(c),
            boot_lab=not host and not list,
            hypervisor=hypervisor,
            xenstored=xenstored,
            hosts=hosts,
        )
    )


def smoke_cli_args(
    kernel: Path | None, only: str, skip: str, json: bool, junit: str, jobs: int
) -> list[str]:
    """`xen-test-vm smoke` arguments from invoke's options (only/skip are comma-separated)."""
    args = ["smoke", *(["--kernel", str(kernel)] if kernel else []), "--jobs", str(jobs)]
    for flag, values in (("--only", only), ("--skip", skip)):
        for value in filter(None, (v.strip() for v in values.split(","))):
            args += [flag, value]
    if json:
        args.append("--json")
    if junit:
        args += ["--junit", junit]
    return args


def smoke_task(
    args: list[str],
    *,
    host: str = "",
    ssh_config: str = "",
    build_kernel: Callable[[], None] | None = None,
    boot_lab: bool = True,
    hypervisor: str = "shadow",
    xenstored: str = "cxenstored",
    hosts: int = 1,
) -> int:
    """Build the kernel (unless given), then run the matrix on host or on a freshly booted lab
    (with hosts=2, the two-host lab: the matrix on the first, migrating to the second)."""
    import time

    from xen_test_vm import cli
    from xen_test_vm.errors import ExitCode, report_error

    if hosts not in (1, 2):
        report_error("smoke", f"--hosts must be 1 or 2, not {hosts}")
        return ExitCode.USAGE
    started = time.monotonic()
    if build_kernel is not None:
        build_kernel()
    if not boot_lab:
        target = ["--host", host, *(["--ssh-config", ssh_config] if ssh_config else [])]
        return cli.main([*args, *(target if host else [])])
    from xen_test_lab.cli import describe_xen
    from xen_test_lab.errors import LabError
    from xen_test_lab.lab import running_lab
    from xen_test_lab.pair import running_pair

    try:
        with contextlib.ExitStack() as stack:
            if hosts == 2:
                lab, peer = stack.enter_context(
                    running_pair(hypervisor=hypervisor, xenstored=xenstored)
                )
                args = [*args, "--destination", peer.ssh_alias]
            else:
                lab = stack.enter_context(running_lab(hypervisor=hypervisor, xenstored=xenstored))
            print(f"lab ready after {time.monotonic() - started:.1f} s", file=sys.stderr)
            print(f"lab: {describe_xen(lab.xen)}", file=sys.stderr)
            code = cli.main([*args, "--host", lab.ssh_alias, "--ssh-config", str(lab.ssh_config)])
    except LabError as exc:  # the lab could not boot (a failed hypervisor build, say)
        report_error("smoke", str(exc))
        return ExitCode.FAILED
    total = time.monotonic() - started
    print(f"smoke: {total:.1f} s including kernel build and lab boot", file=sys.stderr)
    return code


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
    version: str = "",
    repo: str = "",
    draft: bool = False,
    dry_run: bool = False,
    api_url: str = "https://api.github.com",
    token_file: str = "",
) -> None:
    """Publish build/test-vm.xen.gz as GitHub release VERSION (run as `invoke build release`)."""
    from xen_test_release.cli import release_main
    from xen_test_release.commands import ReleaseOptions

    options = ReleaseOptions(
        version=release_version("release", version),
        repo=repo,
        draft=draft,
        dry_run=dry_run,
        api_url=api_url,
        token_file=token_file,
    )
    exit_with(release_main(ROOT, options))


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
    version: str = "",
    repo: str = "",
    dest: str = ".",
    base_url: str = "https://github.com",
) -> None:
    """Download a released test-vm.xen.gz and check it against the release's SHA256SUMS."""
    from xen_test_release.cli import download_main

    version = release_version("download", version)
    exit_with(download_main(ROOT, version=version, repo=repo, dest=dest, base_url=base_url))


@task(
    help={
        "version": "the release to check, e.g. 0.1.5 (its tag must be fetched)",
        "repo": "GitHub owner/name (default: xapi-project/xen-test-vm)",
        "base_url": "download site (default: https://github.com)",
    }
)
def verify(
    c: Context, version: str = "", repo: str = "", base_url: str = "https://github.com"
) -> None:
    """Rebuild tag VERSION from a clean checkout and compare with the published image."""
    from xen_test_release.cli import verify_main

    version = release_version("verify", version)
    exit_with(verify_main(ROOT, version=version, repo=repo, base_url=base_url))


os.environ.setdefault("XEN_TEST_VM_ROOT", str(ROOT))
