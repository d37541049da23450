"""Every remote command is built from argv with shlex quoting: prove it with a real shell."""

from __future__ import annotations

import subprocess

import pytest
from xen_test_vm.remote import atomic_write_command, shell_command

HOSTILE = [
    "plain",
    "with space",
    "semi;colon",
    "$(touch /tmp/xtvm-pwned)",
    "`touch /tmp/xtvm-pwned`",
    "quote'single",
    'quote"double',
    "new\nline",
    "back\\slash",
    "-rf",
    "*",
    "$HOME",
    "tab\there",
    "ünïcode",
    "",
]


@pytest.mark.parametrize("word", HOSTILE)
def test_a_shell_gets_back_exactly_the_argument(word: str) -> None:
    command = shell_command(["printf", "%s\\0", word, "after"])
    out = subprocess.run(["sh", "-c", command], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == [word.encode(), b"after"]


def test_empty_command_is_refused() -> None:
    with pytest.raises(ValueError):
        shell_command([])


def test_atomic_write_stores_stdin_under_a_hostile_path(tmp_path: pytest.TempPathFactory) -> None:
    target = tmp_path / "dir with space; $(x) 'q'\nnl"  # type: ignore[operator]
    command = shell_command(atomic_write_command(str(target)))
    subprocess.run(["sh", "-c", command], input=b"payload", check=True)
    assert target.read_bytes() == b"payload"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # type: ignore[attr-defined]


def test_atomic_write_leaves_nothing_when_the_directory_is_missing(
    tmp_path: pytest.TempPathFactory,
) -> None:
    target = tmp_path / "missing" / "file"  # type: ignore[operator]
    proc = subprocess.run(
        ["sh", "-c", shell_command(atomic_write_command(str(target)))], input=b"x"
    )
    assert proc.returncode != 0
    assert not target.parent.exists()
