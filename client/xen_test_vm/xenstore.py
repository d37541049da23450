"""xenstore access through pyxs, with deadlines on every request and watch-driven waits."""

from __future__ import annotations

import builtins
import contextlib
import copy
import errno
import itertools
import queue
import select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import pyxs
from pyxs._internal import NUL, Event, Op, Packet

from .errors import GuestTimeout, XenstoreError, XenstoreLost

T = TypeVar("T")
REQUEST_TIMEOUT = 30.0
_tokens = itertools.count()
# pyxs's own request-id counter is not thread-safe; next() on a count is.
_rq_ids = itertools.count(1)


def _next_rq_id() -> int:
    return next(_rq_ids) % 0xFFFFFFFF + 1


class _Reply:
    """A reply slot that gives up at a deadline or when the connection dies."""

    def __init__(self, timeout: float) -> None:
        self._ready = threading.Event()
        self._timeout = timeout
        self._packet: Any = None
        self._failure: str | None = None

    def set(self, packet: Any) -> None:
        self._packet = packet
        self._ready.set()

    def fail(self, reason: str) -> None:
        self._failure = reason
        self._ready.set()

    def get(self) -> Any:
        if not self._ready.wait(self._timeout):
            raise XenstoreError(f"xenstored did not answer within {self._timeout:.0f} s")
        if self._failure is not None:
            raise XenstoreLost(f"xenstore connection lost: {self._failure}")
        return self._packet


class _Router(pyxs.Router):  # type: ignore[misc]
    """pyxs's router, hardened for a connection shared by threads and forwarded over SSH.

    - each packet leaves in one write (header and payload together);
    - a dead connection fails pending requests and wakes every watcher;
    - an answer nobody waits for is counted and dropped instead of killing the router.
    """

    def __init__(self, connection: Any, timeout: float) -> None:
        super().__init__(connection)
        self.timeout = timeout
        self.lost: str | None = None
        self.strays = 0

    def send(self, packet: Any) -> _Reply:
        wire = (
            Packet._struct.pack(packet.op, packet.rq_id, packet.tx_id, packet.size) + packet.payload
        )
        with self.send_lock:
            if self.lost is not None:
                raise XenstoreLost(f"xenstore connection lost: {self.lost}")
            reply = _Reply(self.timeout)
            self.rvars[packet.rq_id] = reply
            try:
                self.connection.transport.send(wire)
            except (OSError, AttributeError) as exc:
                self.rvars.pop(packet.rq_id, None)
                raise XenstoreLost(f"xenstore connection lost: {exc}") from None
            return reply

    def _dispatch(self, packet: Any) -> None:
        if packet.op == Op.WATCH_EVENT:
            parts = packet.payload.split(NUL)
            if len(parts) >= 3:
                event = Event(parts[0], parts[1])
                for monitor in list(self.monitors[event.token]):
                    monitor.events.put(event)
            return
        reply = self.rvars.pop(packet.rq_id, None)
        if reply is None:
            self.strays += 1
        else:
            reply.set(packet)

    def __call__(self) -> None:
        reason = "closed"
        try:
            while True:
                ready, _, _ = select.select([self.connection, self.r_terminator], [], [])
                if self.r_terminator in ready:
                    break
                self._dispatch(self.connection.recv())
        except Exception as exc:  # the router thread must never die silently
            reason = str(exc) or type(exc).__name__
        finally:
            self.lost = reason
            self.connection.close()
            self.r_terminator.close()
            self.w_terminator.close()
            for reply in list(self.rvars.values()):
                reply.fail(reason)
            self.rvars.clear()
            for monitors in list(self.monitors.values()):
                for monitor in monitors:
                    monitor.events.put(None)


class _Client(pyxs.Client):  # type: ignore[misc]
    """pyxs's client without its 7-bit check: testers must be able to send non-ASCII bytes."""

    def execute_command(self, op: int, *args: bytes, **kwargs: Any) -> bytes:
        kwargs.update(tx_id=self.tx_id, rq_id=_next_rq_id())
        packet = self.router.send(Packet(op, b"".join(args), **kwargs)).get()
        if packet.op == Op.ERROR:
            raise pyxs.helpers.error(packet.payload[:-1])
        if packet.op != op or packet.tx_id != self.tx_id:
            raise pyxs.UnexpectedPacket(packet)
        result: bytes = packet.payload.rstrip(NUL)
        return result


def _b(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


class Watch:
    """A xenstore watch whose events are read with a deadline."""

    def __init__(self, client: _Client, paths: Sequence[str]) -> None:
        self._monitor = client.monitor()
        self._token = f"xtvm{next(_tokens)}".encode()
        try:
            for path in paths:
                self._monitor.watch(_b(path), self._token)
        except pyxs.PyXSError as exc:
            self.close()
            raise XenstoreError(f"cannot watch {', '.join(paths)}: {exc}") from None

    def next_event(self, deadline: float) -> str | None:
        """The next changed path, or None at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            event = self._monitor.events.get(timeout=remaining)
        except queue.Empty:
            return None
        if event is None:
            raise XenstoreLost("xenstore connection lost while waiting")
        return str(event.path.decode(errors="replace"))

    def close(self) -> None:
        with contextlib.suppress(pyxs.PyXSError, XenstoreError):
            self._monitor.close()


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
        self._router, self._client = self._connect(socket_path(False))

    def _connect(self, path: str) -> tuple[_Router, _Client]:
        router = _Router(pyxs.connection.UnixSocketConnection(path), self._timeout)
        client = _Client(router=router)
        try:
            client.connect()
        except pyxs.PyXSError as exc:
            raise XenstoreError(f"cannot connect to xenstored: {exc}") from None
        return router, client

    @property
    def _live(self) -> _Client:
        with self._lock:
            if self._router.lost is not None:
                self._router, self._client = self._connect(self._socket_path(True))
            return self._client

    @property
    def alive(self) -> bool:
        """False once the current connection to xenstored is gone."""
        return self._router.lost is None

    def close(self) -> None:
        """Stop the router thread."""
        self._client.close()

    def __enter__(self) -> Xenstore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except pyxs.PyXSError as exc:
            raise XenstoreError(f"xenstore {what}: {exc}") from None

    def read(self, path: str) -> str | None:
        """The value at path, or None if the node does not exist."""
        raw = self.read_bytes(path)
        return None if raw is None else raw.decode(errors="replace")

    def read_bytes(self, path: str) -> bytes | None:
        """The raw value at path, or None if the node does not exist."""
        try:
            value: bytes = self._live.read(_b(path))
        except pyxs.PyXSError as exc:
            if exc.args and exc.args[0] == errno.ENOENT:
                return None
            raise XenstoreError(f"xenstore read {path}: {exc}") from None
        return value

    def list(self, path: str) -> builtins.list[str]:
        """Children of path ([] if it does not exist)."""
        try:
            return [c.decode(errors="replace") for c in self._live.list(_b(path))]
        except pyxs.PyXSError as exc:
            if exc.args and exc.args[0] == errno.ENOENT:
                return []
            raise XenstoreError(f"xenstore directory {path}: {exc}") from None

    def get_perms(self, path: str) -> builtins.list[str]:
        """The node's permission list, e.g. ['n0', 'b5']."""
        return self._call(
            f"get-perms {path}", lambda: [p.decode() for p in self._live.get_perms(_b(path))]
        )

    def write(self, path: str, value: str | bytes, perms: Iterable[str] | None = None) -> None:
        """Write value; perms are set in the same transaction, so no watcher sees others."""
        if perms is None:
            self._call(f"write {path}", lambda: self._live.write(_b(path), _b(value)))
            return
        perm_list = [_b(p) for p in perms]
        for _ in range(20):
            tx = copy.copy(self._live)  # own transaction id, shared router
            self._call("transaction start", tx.transaction)
            try:
                tx.write(_b(path), _b(value))
                tx.set_perms(_b(path), perm_list)
            except pyxs.PyXSError as exc:
                self._call("transaction rollback", tx.rollback)
                raise XenstoreError(f"xenstore write {path}: {exc}") from None
            if self._call("transaction commit", tx.commit):
                return
        raise XenstoreError(f"xenstore write {path}: transaction kept conflicting")

    def remove(self, path: str) -> None:
        """Delete a node (and children); a missing node is fine."""
        try:
            self._live.delete(_b(path))
        except pyxs.PyXSError as exc:
            if not (exc.args and exc.args[0] == errno.ENOENT):
                raise XenstoreError(f"xenstore rm {path}: {exc}") from None

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
