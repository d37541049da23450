"""Our xenstore client's wire format (xs_wire.h), byte for byte, and its connection handling.

The peer here is a script of expected request bytes and canned answer bytes on a unix socket: it
checks the codec, not xenstored's behaviour, which the lab tests cover against the real
xenstored (every smoke scenario talks to it through this client).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from xen_test_vm.errors import XenstoreError, XenstoreLost
from xen_test_vm.xenstore import HEADER, Op, Packet, Xenstore, XenstoreRefused, decode_header

Script = Callable[[socket.socket], None]


def packet(op: int, rq_id: int, payload: bytes, tx_id: int = 0) -> bytes:
    return struct.pack("<IIII", op, rq_id, tx_id, len(payload)) + payload


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            # recv gives b"" for ever once the client closed: looping on it spun a CPU core
            # for the rest of the session and starved the lab's QEMU of it.
            raise EOFError(f"the client closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def recv_packet(conn: socket.socket) -> tuple[int, int, int, bytes]:
    op, rq_id, tx_id, length = struct.unpack("<IIII", recv_exactly(conn, 16))
    return op, rq_id, tx_id, recv_exactly(conn, length)


def wait_for_close(conn: socket.socket) -> None:
    """The end of a script: the client must close the connection without another request."""
    assert conn.recv(1) == b"", "the client sent more than the script expected"


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Callable[[Script], str]]:
    """Serve one script per accepted connection; returns the socket path."""
    path = str(tmp_path / "xs.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    scripts: list[Script] = []
    errors: list[BaseException] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:
                    scripts.pop(0)(conn)
                except BaseException as exc:
                    errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def add(script: Script) -> str:
        scripts.append(script)
        return path

    yield add
    # shutdown, not only close, wakes the accept() the thread is blocked in (Linux).
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(10)
    assert not thread.is_alive(), "the peer is still serving a connection the client left open"
    assert errors == []


def test_packets_are_xs_wire_messages() -> None:
    assert Packet(Op.READ, 7, 0, b"/a\0").encode() == packet(2, 7, b"/a\0")
    assert HEADER.size == 16
    with pytest.raises(XenstoreError, match="exceeds 4096"):
        Packet(Op.WRITE, 1, 0, b"x" * 4097).encode()
    with pytest.raises(XenstoreError, match="4097-byte payload"):
        decode_header(struct.pack("<IIII", 2, 1, 0, 4097))


def test_read_write_list_and_errors_byte_for_byte(peer: Callable[[Script], str]) -> None:
    def script(conn: socket.socket) -> None:
        op, rq, tx, body = recv_packet(conn)
        assert (op, tx, body) == (Op.READ, 0, b"/local/domain/5/name\0")
        conn.sendall(packet(Op.READ, rq, b"vm \xc3\xa9"))
        op, rq, _, body = recv_packet(conn)
        assert (op, body) == (Op.READ, b"/nope\0")
        conn.sendall(packet(Op.ERROR, rq, b"ENOENT\0"))
        op, rq, _, body = recv_packet(conn)
        assert (op, body) == (Op.WRITE, b"/k\0\xff\x00raw")  # value bytes as given, no NUL added
        conn.sendall(packet(Op.WRITE, rq, b"OK\0"))
        op, rq, _, body = recv_packet(conn)
        assert (op, body) == (Op.DIRECTORY, b"/local/domain\0")
        conn.sendall(packet(Op.DIRECTORY, rq, b"0\x005\0"))
        op, rq, _, body = recv_packet(conn)
        conn.sendall(packet(Op.ERROR, rq, b"EACCES\0"))
        wait_for_close(conn)

    xs = Xenstore(lambda refresh: peer(script))
    try:
        assert xs.read("/local/domain/5/name") == "vm é"
        assert xs.read("/nope") is None
        xs.write("/k", b"\xff\x00raw")
        assert xs.list("/local/domain") == ["0", "5"]
        with pytest.raises(XenstoreRefused, match="rm /x: EACCES") as refused:
            xs.remove("/x")
        assert refused.value.code == "EACCES"
    finally:
        xs.close()


def test_write_with_perms_is_one_transaction_retried_on_eagain(
    peer: Callable[[Script], str],
) -> None:
    def script(conn: socket.socket) -> None:
        for attempt, tx in enumerate((11, 12)):
            op, rq, _, body = recv_packet(conn)
            assert (op, body) == (Op.TRANSACTION_START, b"\0")
            conn.sendall(packet(op, rq, f"{tx}\0".encode()))
            op, rq, tx_id, body = recv_packet(conn)
            assert (op, tx_id, body) == (Op.WRITE, tx, b"/c\0v")
            conn.sendall(packet(op, rq, b"OK\0", tx))
            op, rq, tx_id, body = recv_packet(conn)
            assert (op, tx_id, body) == (Op.SET_PERMS, tx, b"/c\0n0\0b5\0")
            conn.sendall(packet(op, rq, b"OK\0", tx))
            op, rq, tx_id, body = recv_packet(conn)
            assert (op, tx_id, body) == (Op.TRANSACTION_END, tx, b"T\0")
            answer = packet(Op.ERROR, rq, b"EAGAIN\0") if attempt == 0 else packet(op, rq, b"OK\0")
            conn.sendall(answer)
        wait_for_close(conn)

    xs = Xenstore(lambda refresh: peer(script))
    try:
        xs.write("/c", "v", perms=["n0", "b5"])
    finally:
        xs.close()


def test_watch_events_reach_their_watch_and_a_lost_connection_reconnects(
    peer: Callable[[Script], str],
) -> None:
    gone = threading.Event()

    def first(conn: socket.socket) -> None:
        op, rq, _, body = recv_packet(conn)
        path, token, _ = body.split(b"\0")
        assert (op, path) == (Op.WATCH, b"/w")
        conn.sendall(packet(Op.WATCH, rq, b"OK\0"))
        conn.sendall(packet(Op.WATCH_EVENT, 0, b"/w/x\0" + token + b"\0"))
        conn.sendall(packet(Op.WATCH_EVENT, 0, b"/other\0nobody\0"))
        gone.wait(10)  # then the connection drops

    def second(conn: socket.socket) -> None:
        _, rq, _, _ = recv_packet(conn)
        conn.sendall(packet(Op.READ, rq, b"back"))
        wait_for_close(conn)

    refreshed: list[bool] = []

    def socket_path(refresh: bool) -> str:
        refreshed.append(refresh)
        return peer(second if refresh else first)

    xs = Xenstore(socket_path)
    try:
        watch = xs.watch(["/w"])
        assert watch.next_event(time.monotonic() + 5) == "/w/x"
        assert watch.next_event(time.monotonic() + 0.2) is None  # other tokens are not ours
        gone.set()
        with pytest.raises(XenstoreLost):
            watch.next_event(time.monotonic() + 5)
        assert not xs.alive
        assert xs.read("/r") == "back"
        assert refreshed == [False, True]
    finally:
        xs.close()


def test_a_request_without_answer_times_out(peer: Callable[[Script], str]) -> None:
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        recv_packet(conn)
        release.wait(10)

    xs = Xenstore(lambda refresh: peer(silent), timeout=0.3)
    try:
        with pytest.raises(XenstoreError, match="did not answer within"):
            xs.read("/x")
    finally:
        release.set()
        xs.close()


def test_value_max_is_found_by_trying_once_as_oxenstored_answers(
    peer: Callable[[Script], str],
) -> None:
    """The peer answers like oxenstored with quota-maxsize 2048: E2BIG above it. The client
    finds exactly 2048 by writing only the dom0 scratch key, removes it, and asks only once."""
    probe = b"/tool/xen-test-vm/value-probe\0"
    written: list[int] = []

    def script(conn: socket.socket) -> None:
        while True:
            op, rq, _, body = recv_packet(conn)
            if op == Op.RM:
                assert body == probe
                conn.sendall(packet(Op.RM, rq, b"OK\0"))
                return
            assert op == Op.WRITE and body.startswith(probe)
            size = len(body) - len(probe)
            written.append(size)
            conn.sendall(
                packet(Op.ERROR, rq, b"E2BIG\0") if size > 2048 else packet(op, rq, b"OK\0")
            )

    xs = Xenstore(lambda refresh: peer(script))
    try:
        assert xs.value_max() == 2048
        assert xs.value_max() == 2048
        assert 2048 in written and 2049 in written and len(written) <= 12
    finally:
        xs.close()
