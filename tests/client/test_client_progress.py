"""The house's one progress bar (xen_test_vm.output.ProgressBar, which the release tool's uploads
reuse): drawn on a terminal, silent elsewhere. The terminal is a real pseudo-terminal (os.openpty).
Nothing here depends on timing: the first draw and the one at 100% always happen, only the
redraws between them are rate-limited."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest
from xen_test_release.commands import Environment
from xen_test_release.progress import ProgressReader
from xen_test_vm.output import ProgressBar, progress_stream


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    """The slave side of a pseudo-terminal as a text stream; the master's fd reads what was drawn.

    Tests put it in sys.stderr themselves: pytest swaps sys.stderr for its own capture between
    a fixture's setup and the test.
    """
    master, slave = os.openpty()
    tty = open(slave, "w", encoding="utf-8")  # noqa: SIM115 (closed below, after the test)
    try:
        yield tty, master
    finally:
        tty.close()
        os.close(master)


def drawn(master: int) -> str:
    """What reached the terminal so far (its line discipline turns "\\n" into "\\r\\n")."""
    os.set_blocking(master, False)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_on_a_terminal_the_bar_is_drawn_on_stderr_and_ends_its_line(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tty, master = terminal
    monkeypatch.setattr(sys, "stderr", tty)
    assert progress_stream() is tty
    bar = ProgressBar.on_terminal("upload")
    bar(12 * 1024, 24 * 1024)
    bar(24 * 1024, 24 * 1024)  # the transfer callback's last call also finishes the bar
    text = drawn(master)
    assert text.startswith("\rupload [" + "#" * 15 + "-" * 15 + "]  50% 12.0 KiB/24.0 KiB")
    assert text.endswith("\rupload [" + "#" * 30 + "] 100% 24.0 KiB/24.0 KiB\n")
    assert text.count("\n") == 1  # one line, redrawn in place
    bar.finish()
    assert drawn(master) == ""  # finished once


def test_on_a_terminal_an_unknown_size_shows_the_bytes_so_far(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tty, master = terminal
    monkeypatch.setattr(sys, "stderr", tty)
    bar = ProgressBar.on_terminal("downloading test-vm.xen.gz")
    bar.advance(3 * 1024)
    bar.finish()
    text = drawn(master)
    assert text.endswith("\rdownloading test-vm.xen.gz 3.0 KiB\n") and "[" not in text


def test_off_a_terminal_nothing_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = io.StringIO()  # what a pipe or a file is to the bar: not a terminal
    monkeypatch.setattr(sys, "stderr", piped)
    assert progress_stream() is None
    bar = ProgressBar.on_terminal("upload")
    bar(1024, 2048)
    bar(2048, 2048)
    bar.finish()
    assert piped.getvalue() == ""
    assert bar.done == 2048  # it still counts; it only draws nothing


def test_the_release_tools_uploads_draw_the_same_bar_on_a_terminal_only(
    terminal: tuple[TextIO, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """release/xen_test_release: its Environment takes the client's progress_stream(), and its
    request bodies (ProgressReader) advance the client's ProgressBar as they are read."""
    tty, master = terminal
    data = bytes(200 * 1024)
    monkeypatch.setattr(sys, "stderr", tty)
    environment = Environment(root=tmp_path, env={})
    assert environment.progress is tty
    bar = ProgressBar("uploading x", len(data), environment.progress)
    assert b"".join(ProgressReader(data, bar)) == data
    bar.finish()  # as the upload does once the request is done
    assert drawn(master).endswith("\ruploading x [" + "#" * 30 + "] 100% 200.0 KiB/200.0 KiB\n")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert Environment(root=tmp_path, env={}).progress is None
