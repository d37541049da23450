"""`invoke smoke`: the smoke matrix against a host, or against the local lab booted for it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import cli


@dataclass(frozen=True)
class SmokeOptions:
    """invoke's options; only/skip are comma-separated."""

    kernel: Path
    only: str = ""
    skip: str = ""
    json: bool = False
    junit: str = ""
    jobs: int = 3

    def cli_args(self) -> list[str]:
        """The `xen-test-vm smoke` arguments."""
        args = ["smoke", "--kernel", str(self.kernel), "--jobs", str(self.jobs)]
        for flag, values in (("--only", self.only), ("--skip", self.skip)):
            for value in filter(None, (v.strip() for v in values.split(","))):
                args += [flag, value]
        if self.json:
            args.append("--json")
        if self.junit:
            args += ["--junit", self.junit]
        return args


def smoke_task(
    options: SmokeOptions,
    *,
    host: str = "",
    ssh_config: str = "",
    build_kernel: Callable[[], None] | None = None,
) -> int:
    """Build the kernel (unless given), then run the matrix on host or on a freshly booted lab."""
    started = time.monotonic()
    if build_kernel is not None:
        build_kernel()
    args = options.cli_args()
    if host:
        return cli.main(
            [*args, "--host", host, *(["--ssh-config", ssh_config] if ssh_config else [])]
        )
    from xen_test_lab.lab import running_lab

    with running_lab() as lab:
        print(f"lab ready after {time.monotonic() - started:.1f} s", file=sys.stderr)
        code = cli.main([*args, "--host", lab.ssh_alias, "--ssh-config", str(lab.ssh_config)])
    total = time.monotonic() - started
    print(f"smoke: {total:.1f} s including kernel build and lab boot", file=sys.stderr)
    return code
