"""One connection to a host: SSH, the detected toolstack, and xenstore on demand."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import OperationTimeout, UsageError
from .guest import Guest
from .remote import Host, LocalHost
from .ssh import SSHHost
from .timeouts import Timeouts
from .toolstack import Toolstack, Vm, detect
from .xapi import XapiToolstack
from .xenstore import Xenstore
from .xl import DEFAULT_DIR, XlToolstack

XENSTORED_SOCKET = "/var/run/xenstored/socket"
LOCAL = "local"


@dataclass(frozen=True)
class ConnectOptions:
    """How to reach a host (command-line options)."""

    host: str
    ssh_config: Path | None = None
    accept_new_host_key: bool = False
    remote_dir: str = DEFAULT_DIR
    xapi_user: str = "root"
    xapi_password: str = ""  # as given: the CLI resolves the file, prompt or environment


def open_host(options: ConnectOptions, timeouts: Timeouts | None = None) -> Host:
    """SSH to the host, or this machine for host 'local' (running in dom0)."""
    if options.host == LOCAL:
        return LocalHost()
    timeouts = timeouts or Timeouts()
    host = SSHHost(
        options.host,
        ssh_config=options.ssh_config,
        accept_new_host_key=options.accept_new_host_key,
        connect_timeout=timeouts.ssh_connect(),
    )
    try:
        host.connect(timeouts.left())
    except BaseException:
        host.close()
        raise
    return host


def member_options(options: ConnectOptions, address: str) -> ConnectOptions:
    """How to reach another pool member: its address, with the user of --host."""
    spec = options.host.removeprefix("ssh://")
    user = spec.split("@", 1)[0] + "@" if "@" in spec else ""
    target = f"[{address}]" if ":" in address else address
    return replace(options, host=f"{user}{target}")


class Session:
    """A connected host with its toolstack; close() releases everything."""

    def __init__(self, options: ConnectOptions, timeouts: Timeouts | None = None) -> None:
        """Connect, detect the toolstack and log in to it; timeouts bounds all of that."""
        if options.host == "":
            raise UsageError("no host given (--host HOST or XEN_TEST_VM_HOST)")
        self.options = options
        timeouts = timeouts or Timeouts()
        self.host = open_host(options, timeouts)
        self._xs: Xenstore | None = None
        self._lock = threading.Lock()
        try:
            self.kind, self.toolstack = timeouts.step(
                f"connecting to the toolstack on {self.host.name}", self._open_toolstack
            )
        except BaseException:
            self.host.close()
            raise

    def _open_toolstack(self) -> tuple[str, Toolstack]:
        options = self.options
        kind = detect(self.host)
        if kind == "xapi":
            return kind, XapiToolstack(
                self.host,
                username=options.xapi_user,
                password=options.xapi_password,
                open_member=lambda address: open_host(member_options(options, address)),
            )
        return kind, XlToolstack(self.host, options.remote_dir, xenstore=lambda: self.xs)

    @property
    def xs(self) -> Xenstore:
        """xenstored, through a forwarded socket (opened on first use)."""
        with self._lock:
            if self._xs is None:
                host = self.host
                self._xs = Xenstore(lambda refresh: host.unix_socket(XENSTORED_SOCKET, refresh))
            return self._xs

    def guest(self, vm: Vm) -> Guest:
        """The VM's running domain."""
        domid = self.toolstack.local_domid(vm)
        if domid is None:
            raise UsageError(f"VM {vm.name!r} is not running")
        return Guest(self.xs, domid)

    def find_vm(self, name: str) -> Vm:
        """A registered VM by name."""
        vm = self.toolstack.find(name)
        if vm is None:
            raise UsageError(f"no VM named {name!r} on {self.host.name}")
        return vm

    def close(self, *, log_out: bool = True) -> None:
        """Close xenstore, the XenAPI session and the SSH connection.

        log_out=False: the toolstack may be what hangs (OperationTimeout): the connection goes first
        (ending the commands still running over it) and the XenAPI session is left to expire.
        """
        if not log_out:
            self.host.close()
        if self._xs is not None:
            self._xs.close()
        if log_out and isinstance(self.toolstack, XapiToolstack):
            self.toolstack.close()
        self.host.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: object, error: BaseException | None, *rest: object) -> None:
        self.close(log_out=not isinstance(error, OperationTimeout))
