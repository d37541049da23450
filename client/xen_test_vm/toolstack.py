"""What the client needs from a toolstack, and which one a host runs."""

from __future__ import annotations

import re
import shlex
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import GuestTimeout, OperationTimeout, ToolstackError, UsageError, XapiUnavailable
from .remote import Host
from .xenstore import Xenstore

KERNEL_NAME = "test-vm.xen.gz"
T = TypeVar("T")
# The boot modes of the one kernel image, named as XAPI's `domain_type` names them; on xl,
# pv_in_pvh is `type = "pvh"` with `pvshim = 1` (the PV kernel inside Xen's PV shim).
MODES = ("pv", "pvh", "pv_in_pvh")
# The smallest memory the kernel boots in as PV (3 MiB: "not enough memory for initial mapping").
MIN_MEMORY_MIB = 4


def default_mode(kind: str) -> str:
    """The boot mode a toolstack kind gets unless --mode says otherwise.

    XAPI hosts (XenServer 8, XCP-ng 8.3) no longer support PV guests and create the test VM
    as PVH themselves; plain Xen (xl) keeps PV, which runs on every x86 Xen host, also one
    without hardware virtualisation (PVH needs VT-x/SVM).
    """
    return "pvh" if kind == "xapi" else "pv"


@dataclass(frozen=True)
class VmSpec:
    """A test VM to register; the actions mirror what `xe vm-create` sets by default."""

    name: str
    kernel: str
    memory_mib: int = 32
    vcpus: int = 1
    cmdline: str = ""
    on_poweroff: str = "destroy"
    on_reboot: str = "restart"
    on_crash: str = "destroy"
    other_config: dict[str, str] = field(default_factory=dict)
    mode: str = "pv"


@dataclass(frozen=True)
class Stopped:
    """How a domain ended, as far as its toolstack shows: the shutdown reasons that fit
    (poweroff, reboot, suspend, crash) and what was seen."""

    reasons: frozenset[str]
    seen: str


class ConsoleCapture(ABC):
    """Guests' console output kept on the host while a run lasts."""

    @abstractmethod
    def lines(self, domid: int) -> list[str]:
        """What the domain printed so far (empty if nothing was kept)."""

    @abstractmethod
    def close(self, domids: list[int]) -> None:
        """Keep consoles as before the run again; remove what was kept for these domains."""

    @abstractmethod
    def undo_commands(self) -> list[list[str]]:
        """Host commands that do what close() does to the settings (for the reaper)."""


@dataclass(frozen=True)
class Vm:
    """A registered VM: `ref` is the toolstack's handle (XAPI OpaqueRef, xl config path)."""

    name: str
    ref: str
    uuid: str = ""


def validate_vm_name(name: str) -> str:
    """Any printable name goes (it is always quoted); refuse the ones toolstacks misread."""
    if not name or len(name) > 128:
        raise UsageError("a VM name must have 1 to 128 characters")
    if "\0" in name:
        raise UsageError("a VM name may not contain NUL bytes")
    if name.isdigit():
        raise UsageError(f"VM name {name!r} is all digits: toolstacks read that as a domain id")
    return name


def version_tuple(text: str) -> tuple[int, ...]:
    """'24.20.0' -> (24, 20, 0); stops at the first non-numeric part."""
    parts = []
    for piece in re.split(r"[.\-]", text.strip().lstrip("v")):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


class Toolstack(ABC):
    """Toolstack operations on test VMs (XenAPI or xl)."""

    kind: str
    # The error codes of a guest that does not acknowledge a shutdown / suspend request.
    shutdown_ack_error: str
    suspend_ack_error: str
    # What smoke VMs do when the guest powers off or crashes: chosen so that wait_stopped can
    # tell one from the other on this toolstack.
    smoke_on_poweroff = "destroy"
    smoke_on_crash = "destroy"

    def __init__(self, host: Host) -> None:
        self.host = host

    @abstractmethod
    def kernel_dir(self) -> str:
        """Where this host's toolstack accepts PV kernels."""

    @abstractmethod
    def find(self, name: str) -> Vm | None:
        """The VM registered under name, if any."""

    def exists(self, vm: Vm) -> bool:
        """Whether anything of the VM is left: its registration or a domain under its name."""
        return self.find(vm.name) is not None or self.domid(vm) is not None

    def planned_vm(self, name: str) -> Vm | None:
        """The handle define() will give a VM of this name, if it is known beforehand (then
        its cleanup can be registered before anything exists on the host)."""
        return None

    @abstractmethod
    def define(self, spec: VmSpec) -> Vm:
        """Register the VM (or update the one with that name)."""

    @abstractmethod
    def undefine(self, vm: Vm) -> None:
        """Forget the VM (it must not run)."""

    @abstractmethod
    def start(self, vm: Vm, paused: bool = False) -> None:
        """Boot the VM (paused: built but not yet run, power state paused)."""

    @abstractmethod
    def domid(self, vm: Vm) -> int | None:
        """The running domain's id, None when it has no domain."""

    def local_domid(self, vm: Vm) -> int | None:
        """The domid if the domain runs on the host we are connected to (whose xenstore we
        see); an error if it runs on another host. Toolstacks without pools: domid()."""
        return self.domid(vm)

    def wait_new_domid(self, vm: Vm, old_domid: int, timeout: float) -> int:
        """Until the VM runs in a domain other than old_domid (after a reboot); its domid.

        This default polls; XAPI follows the VM record (event.from), xl xenstore's
        @introduceDomain.
        """
        deadline = time.monotonic() + timeout
        while True:
            domid = self.local_domid(vm)
            if domid is not None and domid != old_domid:
                return domid
            if time.monotonic() > deadline:
                raise GuestTimeout(f"{vm.name} did not come back within {timeout:g} s")
            time.sleep(0.5)

    @abstractmethod
    def wait_stopped(self, vm: Vm, domid: int, timeout: float) -> Stopped:
        """Until the VM's domain `domid`, set up with the smoke actions, has stopped."""

    def for_run(self, state_dir: str) -> Toolstack:
        """This toolstack for one smoke run whose scratch files go to state_dir."""
        return self

    def capture_consoles(self, xs: Xenstore) -> ConsoleCapture | None:
        """Start keeping guests' console output on the host (None: this toolstack cannot)."""
        return None

    def live_migration_blocker(self, mode: str = "pv") -> str | None:
        """Why live migration cannot work here, or None when nothing says so."""
        return None

    def address_of(self, destination: str) -> str:
        """Where to reach a migration destination (as given, unless a pool names its members)."""
        return destination

    @abstractmethod
    def power_state(self, vm: Vm) -> str:
        """running, paused, halted, suspended, shutdown or crashed."""

    @abstractmethod
    def clean_shutdown(self, vm: Vm) -> None:
        """Ask the guest to power off and wait; ToolstackError if it does not acknowledge."""

    @abstractmethod
    def hard_shutdown(self, vm: Vm) -> None:
        """Destroy the domain without asking the guest."""

    @abstractmethod
    def clean_reboot(self, vm: Vm) -> None:
        """Ask the guest to reboot and wait for the new domain."""

    @abstractmethod
    def suspend(self, vm: Vm) -> None:
        """Suspend the guest to disk."""

    @abstractmethod
    def resume(self, vm: Vm, paused: bool = False) -> None:
        """Resume a suspended guest (paused: restored but not yet run)."""

    @abstractmethod
    def unpause(self, vm: Vm) -> None:
        """Let a paused domain run."""

    def set_memory_target(self, vm: Vm, mib: int) -> None:
        """Set the running guest's memory target (memory/target, what its balloon answers)."""
        raise ToolstackError("NOT_SUPPORTED", f"{self.kind} hosts: no memory target yet")

    def memory_kib(self, vm: Vm) -> int:
        """The KiB the running domain holds, as the toolstack sees them."""
        raise ToolstackError("NOT_SUPPORTED", f"{self.kind} hosts: no domain memory yet")

    def checkpoint(self, vm: Vm) -> None:
        """Save the state and let the guest carry on (to the guest: a cancelled suspend)."""
        raise ToolstackError("NOT_SUPPORTED", f"{self.kind} hosts: checkpoint is not supported")

    @abstractmethod
    def migrate(self, vm: Vm, destination: str | None = None) -> None:
        """Live-migrate to destination (another pool member or host), or to this host."""

    @abstractmethod
    def cleanup_commands(self, vm: Vm) -> list[list[str]]:
        """Commands that destroy and forget the VM, run by the reaper if the client vanishes."""

    def cleanup_commands_by_name(self, name: str) -> list[list[str]] | None:
        """Cleanup of every VM named `name`, for before define() where the handle is not
        known in advance (the generated names are unique to a run); None if unsupported."""
        return None

    def define_guarded(self, spec: VmSpec, register: Callable[[list[list[str]]], None]) -> Vm:
        """define(), with the VM's cleanup handed to register (the reaper's) before the VM
        exists: by its planned handle (xl's config path) or by name (XAPI), then by the
        handle define() returned if that differs."""
        planned = self.planned_vm(spec.name)
        if planned is not None:
            register(self.cleanup_commands(planned))
        else:
            by_name = self.cleanup_commands_by_name(spec.name)
            if by_name is not None:
                register(by_name)
        vm = self.define(spec)
        if planned is None or planned != vm:
            register(self.cleanup_commands(vm))
        return vm

    def destroy(self, vm: Vm) -> None:
        """Hard shutdown if it runs, then forget it."""
        if self.power_state(vm) not in ("halted",):
            self.hard_shutdown(vm)
        self.undefine(vm)


def within(
    seconds: float, what: str, operation: Callable[[], T], *, budget: float | None = None
) -> T:
    """Run a toolstack operation; OperationTimeout if it has not finished after `seconds`.

    The operation runs in a daemon thread: whatever it started on the host goes on, which the
    message says; closing the session afterwards ends its SSH commands. budget: the whole
    command's --timeout, of which `seconds` is what is left (the message names the budget).
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            outcome.append(operation())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=body, name=what, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        late = (
            f"{what}: --timeout {budget:g} s ran out"
            if budget is not None
            else f"{what} did not finish within {seconds:g} s"
        )
        raise OperationTimeout(
            f"{late} (the toolstack may still be working on it; check with the status verb)"
        )
    if failure:
        raise failure[0]
    return outcome[0]


# What marks a XAPI host even while xapi is down or restarting (xapi writes the inventory at
# install time; ocaml/xapi/xapi_globs.ml ~81 names the socket).
XAPI_INVENTORY = "/etc/xensource-inventory"
XAPI_SOCKET_PATH = "/var/lib/xcp/xapi"


def _probe_script() -> str:
    inventory, socket = shlex.quote(XAPI_INVENTORY), shlex.quote(XAPI_SOCKET_PATH)
    return (
        'has() { command -v "$1" >/dev/null 2>&1 && echo 1 || echo 0; }; '
        f"[ -e {inventory} ] && inventory=1 || inventory=0; "
        f"[ -S {socket} ] && socket=1 || socket=0; "
        "pidof xapi >/dev/null 2>&1 && running=1 || running=0; "
        'echo "xe=$(has xe) inventory=$inventory socket=$socket running=$running xl=$(has xl)"'
    )


def detect(host: Host) -> str:
    """'xapi' if xapi's socket is there; 'xl' if xl exists and nothing says XAPI.

    A XAPI host whose xapi is down or restarting (xe, the inventory or a xapi process, but no
    socket) is refused: xl there would act behind xapi's back, and xapi would undo it.
    """
    probe = host.run(["sh", "-c", _probe_script()], timeout=60, idempotent=True)
    facts = dict(item.split("=", 1) for item in probe.stdout.split() if "=" in item)
    if facts.get("socket") == "1":
        return "xapi"
    marks = [name for name in ("xe", "inventory", "running") if facts.get(name) == "1"]
    if marks:
        seen = {"xe": "xe", "inventory": XAPI_INVENTORY, "running": "a xapi process"}
        raise XapiUnavailable(
            "XAPI_NOT_RUNNING",
            f"{host.name} is a XAPI host ({', '.join(seen[m] for m in marks)}) but xapi does not "
            f"answer (no {XAPI_SOCKET_PATH}; restarting?): not falling back to xl; retry once "
            "`xe host-list` works",
        )
    if facts.get("xl") == "1":
        return "xl"
    raise UsageError(f"{host.name} is not a Xen host: neither XAPI (xe) nor xl found")
