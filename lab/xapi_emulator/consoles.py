"""Per-domain console logs as a XAPI host's xenconsoled writes them (an EMULATOR).

On a XAPI host, `xenstore-write /local/logconsole/@ /tmp/console.%d` makes xenconsoled log each
guest's console to /tmp/console.<domid> (the 2016 test VM README's recipe; xenopsd reads the
same key for HVM serial ports and replaces every "%d" with the domid:
ocaml/xenopsd/xc/device.ml ~3403). Debian's xenconsoled only logs per VM name, to
guest-<name>.log, across all of a VM's domains. So while the key holds a pattern, the emulator
copies what each domain adds to that file, from the moment it starts, into the domain's own file.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .xenstore import Xenstore

LOG_DIR = "/var/log/xen/console"
LOGCONSOLE = "/local/logconsole"
KEY = f"{LOGCONSOLE}/@"
POLL = 0.5


@dataclass
class _Copy:
    source: str
    target: str
    offset: int


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class ConsoleLogs:
    """Follows the key and copies running domains' console output into per-domid files."""

    def __init__(self, xs: Xenstore, running: Callable[[], dict[int, str]]) -> None:
        self.xs = xs
        self.running = running  # domid -> xl name, of the domains the emulator runs
        self.copies: dict[int, _Copy] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._follow, daemon=True).start()

    def _pattern(self) -> str | None:
        pattern = self.xs.read(KEY)
        return pattern if pattern and "%d" in pattern else None

    def _track(self, domid: int, xl_name: str, pattern: str) -> None:
        source = f"{LOG_DIR}/guest-{xl_name}.log"
        # What the file holds already was printed by the VM's earlier domains.
        self.copies[domid] = _Copy(source, pattern.replace("%d", str(domid)), _size(source))

    def started(self, domid: int, xl_name: str) -> None:
        """A new domain (still paused): log it if the key asks for logs."""
        pattern = self._pattern()
        if pattern is not None:
            with self.lock:
                self._track(domid, xl_name, pattern)

    def stopped(self, domid: int) -> None:
        """The domain is gone: its last output is copied, nothing after."""
        with self.lock:
            copy = self.copies.pop(domid, None)
            if copy is not None:
                self._copy(copy)

    def _copy(self, copy: _Copy) -> None:
        with contextlib.suppress(OSError), open(copy.source, "rb") as source:
            source.seek(copy.offset)
            data = source.read()
            if data:
                with open(copy.target, "ab") as target:
                    target.write(data)
                copy.offset += len(data)

    def _changed(self) -> None:
        pattern = self._pattern()
        with self.lock:
            if pattern is None:
                for copy in self.copies.values():
                    self._copy(copy)
                self.copies.clear()
                return
            for domid, xl_name in self.running().items():
                if domid not in self.copies:
                    self._track(domid, xl_name, pattern)

    def _follow(self) -> None:
        token, events = self.xs.watch([LOGCONSOLE])
        del token
        while True:
            try:
                try:
                    events.get(timeout=POLL)
                    while not events.empty():
                        events.get_nowait()
                    self._changed()
                except queue.Empty:
                    pass
                with self.lock:
                    for copy in self.copies.values():
                        self._copy(copy)
            except Exception as exc:  # the follower must survive anything
                print(f"xapi-emulator: console logs: {exc!r}", flush=True)
