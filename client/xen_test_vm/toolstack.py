"""What the client needs from a toolstack, and which one a host runs."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from .errors import UsageError
from .remote import Host

KERNEL_NAME = "test-vm.xen.gz"


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

    def __init__(self, host: Host) -> None:
        self.host = host

    @abstractmethod
    def kernel_dir(self) -> str:
        """Where this host's toolstack accepts PV kernels."""

    @abstractmethod
    def find(self, name: str) -> Vm | None:
        """The VM registered under name, if any."""

    @abstractmethod
    def define(self, spec: VmSpec) -> Vm:
        """Register the VM (or update the one with that name)."""

    @abstractmethod
    def undefine(self, vm: Vm) -> None:
        """Forget the VM (it must not run)."""

    @abstractmethod
    def start(self, vm: Vm) -> None:
        """Boot the VM."""

    @abstractmethod
    def domid(self, vm: Vm) -> int | None:
        """The running domain's id, None when it has no domain."""

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
    def resume(self, vm: Vm) -> None:
        """Resume a suspended guest."""

    @abstractmethod
    def migrate(self, vm: Vm, destination: str | None = None) -> None:
        """Live-migrate to destination (another pool member or host), or to this host."""

    @abstractmethod
    def cleanup_commands(self, vm: Vm) -> list[list[str]]:
        """Commands that destroy and forget the VM, run by the reaper if the client vanishes."""

    def destroy(self, vm: Vm) -> None:
        """Hard shutdown if it runs, then forget it."""
        if self.power_state(vm) not in ("halted",):
            self.hard_shutdown(vm)
        self.undefine(vm)


def detect(host: Host) -> str:
    """'xapi' if the host runs XAPI (xe and xapi present), else 'xl' if xl exists."""
    probe = host.run(
        [
            "sh",
            "-c",
            "if command -v xe >/dev/null 2>&1"
            " && { [ -S /var/lib/xcp/xapi ] || pidof xapi >/dev/null 2>&1; };"
            " then echo xapi; elif command -v xl >/dev/null 2>&1; then echo xl; else echo none; fi",
        ],
        timeout=60,
        idempotent=True,
    )
    kind = probe.stdout.strip()
    if kind not in ("xapi", "xl"):
        raise UsageError(f"{host.name} is not a Xen host: neither XAPI (xe) nor xl found")
    return kind
