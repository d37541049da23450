"""A FAKE XAPI host for running the installed console script against: no Xen, xapi or sshd.

`ssh` on PATH is a stand-in shell script (FAKE_SSH) playing the host: it answers the client's
toolstack probe as a XAPI host would, swallows uploads, and "forwards" xapi's socket by linking
the client's local end to the FAKE XAPI (tests/client/xapi_fake.py) served on a unix socket.
Calls named in StallingXapi.stall hang there until released, as a hung xapi's would.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xen_test_vm.toolstack import VmSpec
from xen_test_vm.xapi import XAPI_SOCKET, vm_record

from tests.client.conftest import xen_test_vm
from tests.client.xapi_fake import SESSION, FakeXapi, FakeXapiSocket

HOST = "root@xen1"

FAKE_SSH = f"""#!/bin/sh
# FAKE ssh (tests/client/fake_xapi_host.py): a XAPI host whose xapi is the FAKE XAPI.
printf '%s\\n' "$@" >> "$FAKE_SSH_LOG"
previous=""; control=""; forward=""; last=""
for arg; do
    [ "$previous" = -O ] && control="$arg"
    [ "$previous" = -L ] && forward="$arg"
    previous="$arg"; last="$arg"
done
if [ "$control" = forward ]; then
    [ "${{forward#*:}}" = {XAPI_SOCKET} ] || {{ echo "fake ssh: only xapi's socket" >&2; exit 1; }}
    exec ln -s "$FAKE_XAPI_SOCKET" "${{forward%%:*}}"
fi
[ -n "$control" ] && exit 0
case "$last" in
    true) [ -n "$FAKE_SSH_SLOW_LOGIN" ] && exec sleep 60; exit 0 ;;
    *xensource-inventory*) echo "xe=1 inventory=1 socket=1 running=1 xl=0"; exit 0 ;;
    *) exec cat > /dev/null ;;
esac
"""


@dataclass
class StallingXapi(FakeXapi):
    """The FAKE XAPI, but the calls named in `stall` hang until `release` is set."""

    stall: set[str] = field(default_factory=set)
    stalled: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        if method in self.stall:
            self.stalled.append(method)
            self.release.wait(60)
        return super().dispatch(method, params)

    def logins(self) -> list[tuple[Any, ...]]:
        """The arguments of every session.login_with_password that reached the fake."""
        return [args for method, args in self.calls if method == "session.login_with_password"]

    def add_vm(self, name: str) -> None:
        """A registered, halted VM, as `install` leaves it."""
        self.dispatch("VM.create", (SESSION, vm_record(VmSpec(name=name, kernel="/k.gz"))))


@dataclass
class FakeHost:
    """The FAKE host: its XAPI model, and what the console script needs to reach it."""

    model: StallingXapi
    env: dict[str, str]
    ssh_log: Path
    kernel: Path

    def ssh_argv(self) -> list[str]:
        """Every argument the stand-in ssh was given, one per line, all calls together."""
        return self.ssh_log.read_text().splitlines() if self.ssh_log.exists() else []

    def run(self, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
        """`xen-test-vm --host root@xen1 ARGS` with env added; its outcome and its seconds."""
        started = time.monotonic()
        proc = xen_test_vm("--host", HOST, *args, env=self.env | env)
        return proc, time.monotonic() - started


@contextlib.contextmanager
def fake_xapi_host(tmp_path: Path) -> Iterator[FakeHost]:
    """The stand-in ssh in tmp_path/bin, the FAKE XAPI on a socket, a gzip file as kernel."""
    # A short directory of its own: unix socket paths may not exceed ~104 bytes.
    sockets = Path(tempfile.mkdtemp(prefix="xtv-fake-"))
    model = StallingXapi()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH)
    (bin_dir / "ssh").chmod(0o755)
    kernel = tmp_path / "test-vm.xen.gz"
    kernel.write_bytes(gzip.compress(b"not really a kernel"))
    # Not the caller's XEN_TEST_VM_* (a password, a host): they would change what the fake sees.
    env = {k: v for k, v in os.environ.items() if not k.startswith("XEN_TEST_VM_")}
    env |= {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_XAPI_SOCKET": str(sockets / "xapi"),
        "FAKE_SSH_LOG": str(tmp_path / "ssh-argv"),
    }
    try:
        with FakeXapiSocket(model, str(sockets / "xapi")):
            yield FakeHost(model, env, tmp_path / "ssh-argv", kernel)
    finally:
        model.release.set()  # the stalled calls' threads end
        shutil.rmtree(sockets, ignore_errors=True)
