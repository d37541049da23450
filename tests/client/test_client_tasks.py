"""Every invoke task shows its help (`--help` and `-h`), none has a positional argument that
would swallow `--help`, and no option has an automatic short flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from invoke.collection import Collection
from xen_test_vm.errors import ExitCode

import tasks
from tests.client.conftest import ROOT

INVOKE = str(Path(sys.executable).with_name("invoke"))
COLLECTION = Collection.from_module(tasks)


@pytest.mark.parametrize("name", sorted(COLLECTION.task_names))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_task_shows_its_help(name: str, flag: str) -> None:
    proc = subprocess.run(
        [INVOKE, name, flag], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Usage: inv[oke] [--core-opts] {name}" in proc.stdout
    options = proc.stdout.split("Options:", 1)[1] if "Options:" in proc.stdout else ""
    for line in options.splitlines():
        if line.startswith("  -"):
            flag, _, text = line.strip().partition("  ")
            assert text.strip(), f"{name} {flag} has no help text"
    # Short flags only where chosen: `test -k` (pytest's); nothing else gets one.
    for argument in COLLECTION[name].get_arguments():
        assert not argument.positional, (name, argument.name)
        short = [n for n in argument.names if len(n) == 1]
        assert short in ([], ["k"]), argument.names


def test_a_missing_version_is_one_usage_line() -> None:
    for name in ("release", "download", "verify"):
        proc = subprocess.run([INVOKE, name], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr == f"{name}: error: --version is required, e.g. --version 0.1.5\n"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        # --no-lab and a -k that matches nothing: were the check ever lost, this stays short.
        (
            ["test", "--xenstored", "nope", "--no-lab", "-k", "no_test_is_named_this"],
            "test: error: --xenstored must be one of both, cxenstored, oxenstored, not 'nope'",
        ),
        # --list: were the check ever lost, no lab is booted.
        (["smoke", "--hosts", "3", "--list"], "smoke: error: --hosts must be 1 or 2, not 3"),
    ],
)
def test_a_bad_task_option_is_one_error_line_and_the_usage_exit_code(
    argv: list[str], line: str
) -> None:
    proc = subprocess.run([INVOKE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (ExitCode.USAGE, line + "\n"), proc.stdout
