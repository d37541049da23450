"""A small xenstore client over xenstored's unix socket (wire format: xen's io/xs_wire.h).

Transactions are real XS_TRANSACTION_START / XS_RM / XS_WRITE / XS_TRANSACTION_END messages,
as xenopsd sends them (ocaml/xenopsd/xc/domain.ml, `shutdown`).
"""

from __future__ import annotations

import itertools
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

SOCKET = "/var/run/xenstored/socket"
HEADER = struct.Struct("<IIII")  # type, req_id, tx_id, len
XS_DIRECTORY = 1
XS_READ = 2
XS_GET_PERMS = 3
XS_WATCH = 4
XS_UNWATCH = 5
XS_TRANSACTION_START = 6
XS_TRANSACTION_END = 7
XS_WRITE = 11
XS_MKDIR = 12
XS_RM = 13
XS_SET_PERMS = 14
XS_WATCH_EVENT = 15
XS_ERROR = 16

T = TypeVar("T")


class XenstoreError(Exception):
    """xenstored answered XS_ERROR (errno name in `code`)."""

    def __init__(self, code: str, what: str) -> None:
        super().__init__(f"xenstore {what}: {code}")
        self.code = code


class Xenstore:
    """One connection to xenstored; thread-safe; watch events go to per-token queues."""

    def __init__(self, path: str = SOCKET) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._pending: dict[int, queue.Queue[tuple[int, bytes]]] = {}
        self._watches: dict[str, queue.Queue[str]] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("xenstored closed the connection")
            data += chunk
        return data

    def _read_loop(self) -> None:
        try:
            while True:
                kind, req_id, _tx, length = HEADER.unpack(self._read_exact(HEADER.size))
                payload = self._read_exact(length)
                if kind == XS_WATCH_EVENT:
                    parts = payload.split(b"\0")
                    path, token = parts[0].decode(), parts[1].decode()
                    with self._lock:
                        target = self._watches.get(token)
                    if target is not None:
                        target.put(path)
                    continue
                with self._lock:
                    waiter = self._pending.pop(req_id, None)
                if waiter is not None:
                    waiter.put((kind, payload))
        except (OSError, ConnectionError):
            with self._lock:
                waiters = list(self._pending.values())
                self._pending.clear()
            for waiter in waiters:
                waiter.put((XS_ERROR, b"EIO\0"))

    def request(self, kind: int, payload: bytes, tx: int = 0, what: str = "") -> bytes:
        """Send one message and wait for its answer; XS_ERROR raises XenstoreError."""
        answer: queue.Queue[tuple[int, bytes]] = queue.Queue(1)
        with self._lock:
            req_id = next(self._ids)
            self._pending[req_id] = answer
        with self._send_lock:
            self._sock.sendall(HEADER.pack(kind, req_id, tx, len(payload)) + payload)
        got_kind, body = answer.get()
        if got_kind == XS_ERROR:
            raise XenstoreError(body.rstrip(b"\0").decode(), what or str(kind))
        return body

    # ------------------------------------------------------------------ operations

    def read(self, path: str, tx: int = 0) -> str | None:
        """The value, or None when the key does not exist."""
        try:
            return self.request(XS_READ, path.encode() + b"\0", tx, f"read {path}").decode(
                "latin-1"
            )
        except XenstoreError as exc:
            if exc.code == "ENOENT":
                return None
            raise

    def write(self, path: str, value: str, tx: int = 0) -> None:
        """Write value (created with the parent's permissions when new)."""
        self.request(XS_WRITE, path.encode() + b"\0" + value.encode("latin-1"), tx, f"write {path}")

    def mkdir(self, path: str, tx: int = 0) -> None:
        """Create the node (no error if it exists)."""
        self.request(XS_MKDIR, path.encode() + b"\0", tx, f"mkdir {path}")

    def rm(self, path: str, tx: int = 0) -> None:
        """Remove the node and its children; a missing node is not an error."""
        try:
            self.request(XS_RM, path.encode() + b"\0", tx, f"rm {path}")
        except XenstoreError as exc:
            if exc.code != "ENOENT":
                raise

    def directory(self, path: str, tx: int = 0) -> list[str]:
        """Child names ([] when the node does not exist)."""
        try:
            body = self.request(XS_DIRECTORY, path.encode() + b"\0", tx, f"directory {path}")
        except XenstoreError as exc:
            if exc.code == "ENOENT":
                return []
            raise
        return [p.decode() for p in body.split(b"\0") if p]

    def set_perms(self, path: str, perms: list[str], tx: int = 0) -> None:
        """Permissions as xenstore spells them: first entry owner+default, e.g. ['n5']."""
        payload = path.encode() + b"\0" + b"".join(p.encode() + b"\0" for p in perms)
        self.request(XS_SET_PERMS, payload, tx, f"set_perms {path}")

    def get_perms(self, path: str) -> list[str]:
        """The node's permission list."""
        body = self.request(XS_GET_PERMS, path.encode() + b"\0", 0, f"get_perms {path}")
        return [p.decode() for p in body.split(b"\0") if p]

    @contextmanager
    def transaction_once(self) -> Iterator[int]:
        """One XS_TRANSACTION_START ... XS_TRANSACTION_END attempt (EAGAIN escapes)."""
        tx = int(self.request(XS_TRANSACTION_START, b"\0", 0, "transaction start").rstrip(b"\0"))
        try:
            yield tx
        except BaseException:
            self.request(XS_TRANSACTION_END, b"F\0", tx, "transaction abort")
            raise
        self.request(XS_TRANSACTION_END, b"T\0", tx, "transaction commit")

    def transaction(self, body: Callable[[int], T]) -> T:
        """Run body(tx) in a transaction, retrying on EAGAIN like Xs.transaction does."""
        while True:
            try:
                with self.transaction_once() as tx:
                    result = body(tx)
                return result
            except XenstoreError as exc:
                if exc.code != "EAGAIN":
                    raise

    # ------------------------------------------------------------------ watches

    def watch(self, paths: list[str]) -> tuple[str, queue.Queue[str]]:
        """Register watches on paths under a fresh token; events arrive on the queue."""
        token = f"xapi-emu-{next(self._tokens)}"
        events: queue.Queue[str] = queue.Queue()
        with self._lock:
            self._watches[token] = events
        for path in paths:
            self.request(XS_WATCH, path.encode() + b"\0" + token.encode() + b"\0", 0, "watch")
        return token, events

    def unwatch(self, token: str, paths: list[str]) -> None:
        """Drop the watches registered under token."""
        for path in paths:
            with suppress(XenstoreError):
                self.request(XS_UNWATCH, path.encode() + b"\0" + token.encode() + b"\0")
        with self._lock:
            self._watches.pop(token, None)

    def wait_for(self, paths: list[str], check: Callable[[], T | None], timeout: float) -> T | None:
        """Re-run check on every watch event until it returns non-None; None on timeout."""
        token, events = self.watch(paths)
        try:
            deadline = time.monotonic() + timeout
            while True:
                result = check()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    events.get(timeout=remaining)
                except queue.Empty:
                    continue
                while not events.empty():  # a burst of events needs one check
                    events.get_nowait()
        finally:
            self.unwatch(token, paths)
