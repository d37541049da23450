"""Entry points for the invoke tasks: build the real environment, report errors in one line."""

from __future__ import annotations

import os
from pathlib import Path

from xen_test_release.commands import (
    Environment,
    ReleaseOptions,
    download_command,
    release_command,
    verify_command,
)
from xen_test_release.errors import run_cli


def release_main(root: Path, options: ReleaseOptions) -> int:
    """`invoke build release`: publish build/test-vm.xen.gz as release options.version."""
    return run_cli(
        lambda: release_command(options, Environment(root=root, env=os.environ)), prog="release"
    )


def download_main(root: Path, *, version: str, repo: str, dest: str, base_url: str) -> int:
    """`invoke download`: fetch and verify a published image."""
    world = Environment(root=root, env=os.environ)
    return run_cli(
        lambda: download_command(
            version=version, repo=repo, dest=Path(dest), base_url=base_url, world=world
        ),
        prog="download",
    )


def verify_main(root: Path, *, version: str, repo: str, base_url: str) -> int:
    """`invoke verify`: rebuild a tag and compare with its published image."""
    world = Environment(root=root, env=os.environ)
    return run_cli(
        lambda: verify_command(version=version, repo=repo, base_url=base_url, world=world),
        prog="verify",
    )
