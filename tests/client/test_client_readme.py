"""The README's examples run as written: every `xen-test-vm` line parses (each `a|b` alternative,
optional parts included), the host-free ones really run, and every `./dev TASK --option` names a
task and options tasks.py has."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess

import pytest
from invoke.collection import Collection
from xen_test_vm.cli import build_parser
from xen_test_vm.ssh import parse_destination

import tasks
from tests.client.conftest import CONSOLE_SCRIPT, ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


def _lines(prefix: str) -> list[str]:
    found = []
    for block in BLOCKS:
        for line in block.splitlines():
            line = re.sub(r"^GITHUB_TOKEN=\S+ ", "", line.strip())
            if line.startswith(prefix):
                found.append(re.sub(r"\s+#.*$", "", line))
    return found


def _variants(line: str) -> list[list[str]]:
    """Every verb alternative of a synopsis line, optional [parts] included."""
    words = shlex.split(line.replace("[", "").replace("]", ""))[1:]
    choices = [w.split("|") if "|" in w and not w.startswith("{") else [w] for w in words]
    return [list(v) for v in itertools.product(*choices)]


CLIENT_LINES = _lines("xen-test-vm ")
TASK_LINES = _lines("./dev ")


def test_the_readme_has_examples() -> None:
    assert len(CLIENT_LINES) >= 10 and len(TASK_LINES) >= 8


@pytest.mark.parametrize("line", CLIENT_LINES)
def test_client_examples_parse(line: str) -> None:
    for argv in _variants(line):
        args = build_parser().parse_args(argv)
        if args.host:
            parse_destination(args.host)


def test_host_free_examples_run() -> None:
    for line in CLIENT_LINES:
        if "--host" in line:
            continue
        for argv in _variants(line):
            argv = [a for a in argv if a != "GROUP"] if "GROUP" in argv else argv
            if argv[-1] == "--only":
                argv.append("guest")
            proc = subprocess.run(
                [str(CONSOLE_SCRIPT), *argv], capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, (argv, proc.stderr)
            assert proc.stdout.strip()


@pytest.mark.parametrize("line", TASK_LINES)
def test_task_examples_name_real_tasks_and_options(line: str) -> None:
    collection = Collection.from_module(tasks)
    words = shlex.split(line)[1:]
    task_name = None
    for word in words:
        if word.startswith("--"):
            assert task_name is not None, line
            flag = word[2:].split("=")[0].replace("-", "_")
            options = {a.name for a in collection[task_name].get_arguments()}
            assert flag in options, (line, flag, sorted(options))
        elif word in collection.task_names:
            task_name = word
    assert task_name is not None, line


def test_the_readme_links_the_protocol_notes_and_its_links_resolve() -> None:
    links = re.findall(r"\]\(([^)]+)\)", README)
    assert {"docs/PROTOCOL.md", "docs/PROTOCOL-NOTES.md"} <= set(links)
    local = [link for link in links if "://" not in link and not link.startswith("#")]
    assert [link for link in local if not (ROOT / link.split("#")[0]).exists()] == []
