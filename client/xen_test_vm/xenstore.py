"""Our own xenstore client: the xenstored wire protocol over its unix socket (xs_wire.h).

One connection is shared by threads: each request is one packet written in one piece, a reader
thread hands each answer to the request with its id and each watch event to its watch, and a
dead connection fails every pending request and wakes every watcher; the next request
reconnects. Every request has a deadline.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from .errors import GuestTimeout, XenstoreError, XenstoreLost

T = TypeVar("T")
REQUEST_TIMEOUT = 30.0
HEADER = struct.Struct("<IIII")  # type, req_id, tx_id, len (struct xsd_sockmsg)
PAYLOAD_MAX = 4096  # XENSTORE_PAYLOAD_MAX
# Where value_max() tries its writes: under dom0's own /tool, never a guest's home.
VALUE_PROBE = "/tool/xen-test-vm/value-probe"
NUL = b"\0"
_tokens = itertools.count()


class Op(IntEnum):
    """enum xsd_sockmsg_type (the ones the client uses)."""

    DIRECTORY = 1
    READ = 2
    GET_PERMS = 3
    WATCH = 4
    UNWATCH = 5
    TRANSACTION_START = 6
    TRANSACTION_END = 7
    WRITE = 11
    RM = 13
    SET_PERMS = 14
    WATCH_EVENT = 15
    ERROR = 16


@dataclass(frozen=True)
class Packet:
    """One xenstore message."""

    op: int
    rq_id: int
    tx_id: int
    payload: bytes

    def encode(self) -> bytes:
        """Header and payload, to be sent in one write."""
        if len(self.payload) > PAYLOAD_MAX:
            raise XenstoreError(
                f"xenstore request of {len(self.payload)} bytes exceeds {PAYLOAD_MAX}"
            )
        return HEADER.pack(self.op, self.rq_id, self.tx_id, len(self.payload)) + self.payload


def decode_header(header: bytes) -> tuple[int, int, int, int]:
    """(op, rq_id, tx_id, length) of a received header; a length past the maximum is refused."""
    op, rq_id, tx_id, length = HEADER.unpack(header)
    if length > PAYLOAD_MAX:
        raise XenstoreError(f"xenstored sent a {length}-byte payload (max {PAYLOAD_MAX})")
    return op, rq_id, tx_id, length


class XenstoreRefused(XenstoreError):
    """xenstored answered XS_ERROR; `code` is its errno name (ENOENT, EACCES, EAGAIN, ...)."""

    def __init__(self, code: str, what: str) -> None:
        self.code = code
        super().__init__(f"xenstore {what}: {code}")


def _b(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


class _Reply:
    """A reply slot that gives up at a deadline or when the connection dies."""

    def __init__(self, timeout: float) -> None:
        self._ready = threading.Event()
        self._timeout = timeout
        self._packet: Packet | None = None
        self._failure: str | None = None

    def set(self, packet: Packet) -> None:
        self._packet = packet
        self._ready.set()

    def fail(self, reason: str) -> None:
        self._failure = reason
        self._ready.set()

    def get(self) -> Packet:
        if not self._ready.wait(self._timeout):
            raise XenstoreError(f"xenstored did not answer within {self._timeout:.0f} s")
        if self._failure is not None:
            raise XenstoreLost(f"xenstore connection lost: {self._failure}")
        assert self._packet is not None
        return self._packet


class Connection:
    """One socket to xenstored with its reader thread."""

    def __init__(self, path: str, timeout: float) -> None:
        self.timeout = timeout
        self.lost: str | None = None
        self.strays = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise XenstoreError(f"cannot connect to xenstored at {path}: {exc}") from None
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Reply] = {}
        self._watches: dict[bytes, queue.Queue[str | None]] = {}
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read_loop, name="xenstore", daemon=True)
        self._reader.start()

    def request(self, op: Op, payload: bytes, tx_id: int = 0, what: str = "") -> bytes:
        """Send one request and wait for its answer; XS_ERROR becomes XenstoreRefused."""
        rq_id = next(self._ids) % 0xFFFFFFFF + 1
        wire = Packet(op, rq_id, tx_id, payload).encode()
        with self._send_lock:
            if self.lost is not None:
                raise XenstoreLost(f"xenstore connection lost: {self.lost}")
            reply = _Reply(self.timeout)
            self._pending[rq_id] = reply
            try:
                self._sock.sendall(wire)
            except OSError as exc:
                self._pending.pop(rq_id, None)
                raise XenstoreLost(f"xenstore connection lost: {exc}") from None
        answer = reply.get()
        if answer.op == Op.ERROR:
            raise XenstoreRefused(answer.payload.rstrip(NUL).decode(errors="replace"), what)
        if answer.op != op:
            raise XenstoreError(f"xenstore {what}: answer of type {answer.op}, expected {op}")
        return answer.payload

    def add_watch(self, token: bytes) -> queue.Queue[str | None]:
        events: queue.Queue[str | None] = queue.Queue()
        self._watches[token] = events
        return events

    def drop_watch(self, token: bytes) -> None:
        self._watches.pop(token, None)

    def _recv_exactly(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self._sock.recv(count)
            if not chunk:
                raise ConnectionError("xenstored closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def _dispatch(self, packet: Packet) -> None:
        if packet.op == Op.WATCH_EVENT:
            parts = packet.payload.split(NUL)
            if len(parts) >= 2:
                events = self._watches.get(parts[1])
                if events is not None:
                    events.put(parts[0].decode(errors="replace"))
            return
        reply = self._pending.pop(packet.rq_id, None)
        if reply is None:
            self.strays += 1  # an answer nobody waits for (its request timed out)
        else:
            reply.set(packet)

    def _read_loop(self) -> None:
        reason = "closed"
        try:
            while True:
                op, rq_id, tx_id, length = decode_header(self._recv_exactly(HEADER.size))
                payload = self._recv_exactly(length) if length else b""
                self._dispatch(Packet(op, rq_id, tx_id, payload))
        except Exception as exc:  # the reader must never die silently
            reason = str(exc) or type(exc).__name__
        finally:
            self.lost = self.lost or reason
            with contextlib.suppress(OSError):
                self._sock.close()
            for reply in list(self._pending.values()):
                reply.fail(self.lost)
            self._pending.clear()
            for events in list(self._watches.values()):
                events.put(None)

    def close(self) -> None:
        """Shut the socket down; the reader thread ends and fails whatever is pending."""
        self.lost = self.lost or "closed"
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(5)


class Watch:
    """A xenstore watch whose events are read with a deadline."""

    def __init__(self, connection: Connection, paths: Sequence[str]) -> None:
        self._connection = connection
        self._token = f"xtvm{next(_tokens)}".encode()
        self._events = connection.add_watch(self._token)
        self._paths: list[bytes] = []
        try:
            for path in paths:
                connection.request(Op.WATCH, _b(path) + NUL + self._token + NUL, what="watch")
                self._paths.append(_b(path))
        except XenstoreRefused as exc:
            self.close()
            raise XenstoreError(f"cannot watch {', '.join(paths)}: {exc.code}") from None

    def next_event(self, deadline: float) -> str | None:
        """The next changed path, or None at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            event = self._events.get(timeout=remaining)
        except queue.Empty:
            return None
        if event is None:
            raise XenstoreLost("xenstore connection lost while waiting")
        return event

    def close(self) -> None:
        for path in self._paths:
            with contextlib.suppress(XenstoreError):
                self._connection.request(Op.UNWATCH, path + NUL + self._token + NUL, what="unwatch")
        self._paths.clear()
        self._connection.drop_watch(self._token)


class Xenstore:
    """A connection to xenstored (a local socket, or one forwarded over SSH).

    `socket_path(refresh)` gives the socket to connect to; when the connection dies, requests in
    flight fail with XenstoreLost and the next request reconnects (refresh=True).
    """

    def __init__(
        self, socket_path: Callable[[bool], str], timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self._socket_path = socket_path
        self._timeout = timeout
        self._lock = threading.Lock()
        self._connection = Connection(socket_path(False), timeout)
        self._value_max: int | None = None

    @property
    def _live(self) -> Connection:
        with self._lock:
            if self._connection.lost is not None:
                self._connection = Connection(self._socket_path(True), self._timeout)
            return self._connection

    @property
    def alive(self) -> bool:
        """False once the current connection to xenstored is gone."""
        return self._connection.lost is None

    def close(self) -> None:
        """Close the connection (the reader thread ends)."""
        self._connection.close()

    def __enter__(self) -> Xenstore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, op: Op, payload: bytes, what: str, tx_id: int = 0) -> bytes:
        return self._live.request(op, payload, tx_id, what)

    def read(self, path: str) -> str | None:
        """The value at path, or None if the node does not exist."""
        raw = self.read_bytes(path)
        return None if raw is None else raw.decode(errors="replace")

    def read_bytes(self, path: str) -> bytes | None:
        """The raw value at path, or None if the node does not exist."""
        try:
            return self._request(Op.READ, _b(path) + NUL, f"read {path}")
        except XenstoreRefused as exc:
            if exc.code == "ENOENT":
                return None
            raise

    def list(self, path: str) -> builtins.list[str]:
        """Children of path ([] if it does not exist)."""
        try:
            answer = self._request(Op.DIRECTORY, _b(path) + NUL, f"directory {path}")
        except XenstoreRefused as exc:
            if exc.code == "ENOENT":
                return []
            raise
        return [c.decode(errors="replace") for c in answer.split(NUL) if c]

    def get_perms(self, path: str) -> builtins.list[str]:
        """The node's permission list, e.g. ['n0', 'b5']."""
        answer = self._request(Op.GET_PERMS, _b(path) + NUL, f"get-perms {path}")
        return [p.decode() for p in answer.split(NUL) if p]

    def write(self, path: str, value: str | bytes, perms: Iterable[str] | None = None) -> None:
        """Write value (any bytes); perms are set in the same transaction, unseen by watchers."""
        body = _b(path) + NUL + _b(value)
        if perms is None:
            self._request(Op.WRITE, body, f"write {path}")
            return
        perm_payload = _b(path) + NUL + b"".join(_b(p) + NUL for p in perms)
        for _ in range(20):
            tx_id = int(self._request(Op.TRANSACTION_START, NUL, "transaction start").rstrip(NUL))
            try:
                self._request(Op.WRITE, body, f"write {path}", tx_id)
                self._request(Op.SET_PERMS, perm_payload, f"set-perms {path}", tx_id)
            except XenstoreRefused:
                with contextlib.suppress(XenstoreError):
                    self._request(Op.TRANSACTION_END, b"F" + NUL, "transaction rollback", tx_id)
                raise
            try:
                self._request(Op.TRANSACTION_END, b"T" + NUL, "transaction commit", tx_id)
                return
            except XenstoreRefused as exc:
                if exc.code != "EAGAIN":  # EAGAIN: a conflicting change, try again
                    raise
        raise XenstoreError(f"xenstore write {path}: transaction kept conflicting")

    def value_max(self) -> int:
        """The longest value this host's xenstored accepts in one write, found by trying
        (once per connection) on a dom0-only scratch key: C xenstored takes what fits the
        4096-byte payload, oxenstored refuses values over its quota-maxsize (2048 as packaged,
        dom0's writes included) with E2BIG."""
        if self._value_max is None:
            low, high = 0, PAYLOAD_MAX - len(VALUE_PROBE) - 1
            while low < high:
                size = (low + high + 1) // 2
                try:
                    self.write(VALUE_PROBE, b"x" * size)
                    low = size
                except XenstoreRefused as exc:
                    if exc.code != "E2BIG":
                        raise
                    high = size - 1
            self.remove(VALUE_PROBE)
            self._value_max = low
        return self._value_max

    def remove(self, path: str) -> None:
        """Delete a node (and children); a missing node is fine."""
        try:
            self._request(Op.RM, _b(path) + NUL, f"rm {path}")
        except XenstoreRefused as exc:
            if exc.code != "ENOENT":
                raise

    def watch(self, paths: Sequence[str]) -> Watch:
        """Watch paths (a watch fires once when registered, and may fire spuriously)."""
        return Watch(self._live, paths)

    def wait_for(
        self,
        paths: Sequence[str],
        check: Callable[[], T | None],
        timeout: float,
        what: str,
    ) -> T:
        """Re-evaluate check() on every change under paths until it returns a value, or time out."""
        deadline = time.monotonic() + timeout
        watch = self.watch(paths)
        try:
            while True:
                result = check()
                if result is not None:
                    return result
                # Drain until something changes (or the deadline passes).
                if watch.next_event(deadline) is None:
                    result = check()
                    if result is not None:
                        return result
                    raise GuestTimeout(f"{what}: nothing within {timeout:g} s")
        finally:
            watch.close()


def domain_path(domid: int) -> str:
    """A guest's home in xenstore."""
    return f"/local/domain/{domid}"


def find_domids_by_name(xs: Xenstore, name: str) -> list[int]:
    """Domain ids whose xenstore name is exactly `name` (works for any characters in the name)."""
    found = []
    for child in xs.list("/local/domain"):
        if child.isdigit() and child != "0" and xs.read(f"/local/domain/{child}/name") == name:
            found.append(int(child))
    return sorted(found)
