"""The XAPI backend: XenAPI over XML-RPC (XAPI's unix socket, forwarded over SSH)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import XenAPI

from .errors import GuestTimeout, ToolstackError, UsageError
from .remote import Host
from .toolstack import Toolstack, Vm, VmSpec, version_tuple

XAPI_SOCKET = "/var/lib/xcp/xapi"
NULL_REF = "OpaqueRef:NULL"
MIB = 1024 * 1024
# XAPI 24.20 boots PV kernels only from here; older releases from /boot/guest.
GUEST_DIR_NEW = "/var/lib/xcp/guest"
GUEST_DIR_OLD = "/boot/guest"
FIRST_XAPI_WITH_NEW_DIR = (24, 20)
POWER_WAIT = 300.0

SessionFactory = Callable[[], Any]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over a unix socket at an arbitrary path (XenAPI's own maps '_' to '/')."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path)


def guest_kernel_dir(software_version: dict[str, str]) -> str:
    """Pick the kernel directory from the host's XAPI version (xapi_build or xapi)."""
    raw = software_version.get("xapi_build") or software_version.get("xapi") or ""
    version = version_tuple(raw)
    if not version:
        raise ToolstackError("UNKNOWN_XAPI_VERSION", f"cannot read the XAPI version from {raw!r}")
    return GUEST_DIR_NEW if version >= FIRST_XAPI_WITH_NEW_DIR else GUEST_DIR_OLD


def vm_record(spec: VmSpec) -> dict[str, Any]:
    """The VM.create record: the fields `xe vm-create` fills, with our kernel and memory."""
    memory = str(spec.memory_mib * MIB)  # XAPI's int64 travels as a string over XML-RPC
    return {
        "name_label": spec.name,
        "name_description": "xen-test-vm test kernel",
        "user_version": "0",
        "is_a_template": False,
        "affinity": NULL_REF,
        "memory_target": memory,
        "memory_static_max": memory,
        "memory_dynamic_max": memory,
        "memory_dynamic_min": memory,
        "memory_static_min": memory,
        "VCPUs_params": {},
        "VCPUs_max": str(spec.vcpus),
        "VCPUs_at_startup": str(spec.vcpus),
        "actions_after_shutdown": spec.on_poweroff,
        "actions_after_reboot": spec.on_reboot,
        "actions_after_crash": spec.on_crash,
        "PV_bootloader": "",
        "PV_kernel": spec.kernel,
        "PV_ramdisk": "",
        "PV_args": spec.cmdline,
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "",
        "HVM_boot_params": {},
        "HVM_shadow_multiplier": 1.0,
        "platform": {},
        "PCI_bus": "",
        "other_config": dict(spec.other_config),
        "xenstore_data": {},
        "recommendations": "",
        "ha_always_run": False,
        "ha_restart_priority": "",
        "tags": [],
        "protection_policy": NULL_REF,
        "is_snapshot_from_vmpp": False,
        "appliance": NULL_REF,
        "start_delay": "0",
        "shutdown_delay": "0",
        "order": "0",
        "suspend_SR": NULL_REF,
        "version": "0",
        "generation_id": "",
        "hardware_platform_version": "0",
        "has_vendor_device": False,
        "domain_type": "pv",
    }


class XapiToolstack(Toolstack):
    """XenAPI on a XenServer / XCP-ng host (talk to the pool master)."""

    kind = "xapi"

    def __init__(
        self,
        host: Host,
        session_factory: SessionFactory | None = None,
        username: str = "root",
        password: str = "",
    ) -> None:
        super().__init__(host)
        factory = session_factory or (
            lambda: XenAPI.Session(
                "http://localhost/", transport=UnixTransport(host.unix_socket(XAPI_SOCKET))
            )
        )
        self.session = factory()
        try:
            self.session.login_with_password(username, password, "1.0", "xen-test-vm")
        except XenAPI.Failure as exc:
            details = list(exc.details)
            if details and details[0] == "HOST_IS_SLAVE":
                raise UsageError(
                    f"{host.name} is a pool member; use the pool master {details[1]}"
                ) from None
            raise _failure(exc, "login") from None
        self.api = self.session.xenapi
        self._host_ref: str | None = None

    def close(self) -> None:
        """Log out."""
        with contextlib.suppress(XenAPI.Failure, OSError, xmlrpc.client.Error):
            self.session.xenapi.session.logout()

    def call(self, method: str, *args: Any) -> Any:
        """One XenAPI call; failures become ToolstackError with XAPI's error code."""
        target: Any = self.api
        for part in method.split("."):
            target = getattr(target, part)
        try:
            return target(*args)
        except XenAPI.Failure as exc:
            raise _failure(exc, method) from None

    def this_host(self) -> str:
        """The pool master's host ref (the host we installed the kernel on)."""
        if self._host_ref is None:
            pool = self.call("pool.get_all")[0]
            self._host_ref = str(self.call("pool.get_master", pool))
        return self._host_ref

    def kernel_dir(self) -> str:
        """From the host's software_version."""
        return guest_kernel_dir(self.call("host.get_software_version", self.this_host()))

    def find(self, name: str) -> Vm | None:
        """The first non-template VM with this name label."""
        for ref in self.call("VM.get_by_name_label", name):
            record = self.call("VM.get_record", ref)
            if not record["is_a_template"] and not record["is_control_domain"]:
                return Vm(name=name, ref=ref, uuid=record["uuid"])
        return None

    def define(self, spec: VmSpec) -> Vm:
        """VM.create, or bring the existing VM's kernel, args and memory up to date."""
        existing = self.find(spec.name)
        if existing is None:
            ref = self.call("VM.create", vm_record(spec))
            return Vm(name=spec.name, ref=ref, uuid=self.call("VM.get_uuid", ref))
        self.call("VM.set_PV_kernel", existing.ref, spec.kernel)
        self.call("VM.set_PV_args", existing.ref, spec.cmdline)
        memory = str(spec.memory_mib * MIB)
        self.call("VM.set_memory_limits", existing.ref, memory, memory, memory, memory)
        return existing

    def undefine(self, vm: Vm) -> None:
        """VM.destroy (the record; a test VM has no disks)."""
        self.call("VM.destroy", vm.ref)

    def start(self, vm: Vm) -> None:
        """VM.start_on the master, where the kernel is."""
        self.call("VM.start_on", vm.ref, self.this_host(), False, False)

    def domid(self, vm: Vm) -> int | None:
        """VM.get_domid: -1 means no domain."""
        domid = int(self.call("VM.get_domid", vm.ref))
        return domid if domid >= 0 else None

    def power_state(self, vm: Vm) -> str:
        """Running, Halted, Suspended, Paused -> lower case."""
        return str(self.call("VM.get_power_state", vm.ref)).lower()

    def wait_power_state(self, vm: Vm, wanted: set[str], timeout: float = POWER_WAIT) -> str:
        """Follow the VM with event.from until its power_state is one of `wanted`."""
        deadline = time.monotonic() + timeout
        token = ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout(
                    f"{vm.name!r} did not reach {'/'.join(sorted(wanted))} within {timeout:g} s"
                )
            result = self.call("event.from", [f"vm/{vm.ref}"], token, min(remaining, 30.0))
            token = result["token"]
            for event in result["events"]:
                snapshot = event.get("snapshot") or {}
                state = str(snapshot.get("power_state", "")).lower()
                if event.get("ref") == vm.ref and state in wanted:
                    return state

    def clean_shutdown(self, vm: Vm) -> None:
        """VM.clean_shutdown (VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT if the guest stays silent)."""
        self.call("VM.clean_shutdown", vm.ref)

    def hard_shutdown(self, vm: Vm) -> None:
        """VM.hard_shutdown."""
        self.call("VM.hard_shutdown", vm.ref)

    def clean_reboot(self, vm: Vm) -> None:
        """VM.clean_reboot."""
        self.call("VM.clean_reboot", vm.ref)

    def suspend(self, vm: Vm) -> None:
        """VM.suspend (needs the pool's suspend SR)."""
        self.call("VM.suspend", vm.ref)

    def resume(self, vm: Vm) -> None:
        """VM.resume_on the master."""
        self.call("VM.resume_on", vm.ref, self.this_host(), False, False)

    def migrate(self, vm: Vm, destination: str | None = None) -> None:
        """VM.pool_migrate to a pool member (by name label or uuid), or to this host."""
        if destination is None:
            target = self.this_host()
        else:
            refs = self.call("host.get_by_name_label", destination)
            target = refs[0] if refs else self.call("host.get_by_uuid", destination)
        self.call("VM.pool_migrate", vm.ref, target, {"live": "true"})

    def cleanup_commands(self, vm: Vm) -> list[list[str]]:
        """xe, by uuid (safe whatever the name)."""
        return [
            ["xe", "vm-shutdown", "--force", f"uuid={vm.uuid}"],
            ["xe", "vm-destroy", f"uuid={vm.uuid}"],
        ]


def _failure(exc: Any, method: str) -> ToolstackError:
    details = [str(d) for d in getattr(exc, "details", [])] or ["INTERNAL_ERROR"]
    return ToolstackError(details[0], f"{method} " + " ".join(details[1:]))
