"""The XAPI backend: XenAPI over XML-RPC (XAPI's unix socket, forwarded over SSH)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any

import XenAPI

from .errors import GuestTimeout, ToolstackError, UsageError
from .remote import Host, atomic_write_command
from .toolstack import (
    XAPI_INVENTORY,
    XAPI_SOCKET_PATH,
    ConsoleCapture,
    Stopped,
    Toolstack,
    Vm,
    VmSpec,
    version_tuple,
)
from .xenstore import Xenstore

XAPI_SOCKET = XAPI_SOCKET_PATH
NULL_REF = "OpaqueRef:NULL"
MIB = 1024 * 1024
# Direct-boot kernels: /var/lib/xcp/guest is allowed since xapi v23.9.0 (CP-30367) and the only
# directory since v24.20.0 (IH-507, ocaml/xapi/xapi_xenops.ml ~348); older releases: /boot/guest.
GUEST_DIR_NEW = "/var/lib/xcp/guest"
GUEST_DIR_OLD = "/boot/guest"
FIRST_XAPI_WITH_NEW_DIR = (23, 9)
POWER_WAIT = 300.0
# Console logging on a XAPI host (the 2016 README's recipe): xenconsoled writes each guest's
# console to the file this key names, "%d" replaced by the domid. xenopsd reads the same key for
# an HVM guest's serial port, with every "%d" replaced by the domid
# (ocaml/xenopsd/xc/device.ml ~3403).
LOGCONSOLE_DIR = "/local/logconsole"
LOGCONSOLE_KEY = f"{LOGCONSOLE_DIR}/@"
CONSOLE_PATTERN = "/tmp/console.%d"
# A failed row's console: its first lines (the banner, ready) and its last ones.
CONSOLE_HEAD, CONSOLE_TAIL = 12, 40
CONSOLE_MAX_BYTES = 1 << 20

SessionFactory = Callable[[], Any]
# Opens a connection (SSH) to another pool member by its address, for copying the kernel there.
MemberOpener = Callable[[str], Host]


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
    """Pick the kernel directory from the host's XAPI version (xapi_build or xapi).

    A dev build (no version from its build: xapi_build "0.0.dev", xapi "0.0", git_id "dev";
    ocaml/util/xapi_version.ml ~30) is today's source, which takes /var/lib/xcp/guest only.
    """
    raw = software_version.get("xapi_build") or software_version.get("xapi") or ""
    version = version_tuple(raw)
    if not version:
        raise ToolstackError("UNKNOWN_XAPI_VERSION", f"cannot read the XAPI version from {raw!r}")
    if version[0] == 0 or software_version.get("git_id") == "dev":
        return GUEST_DIR_NEW
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
        "domain_type": spec.mode,
    }


def console_excerpt(text: str) -> list[str]:
    """The first and last lines of a console log, with how many were left out between."""
    lines = text.splitlines()
    if len(lines) <= CONSOLE_HEAD + CONSOLE_TAIL:
        return lines
    left_out = len(lines) - CONSOLE_HEAD - CONSOLE_TAIL
    return [*lines[:CONSOLE_HEAD], f"[... {left_out} lines ...]", *lines[-CONSOLE_TAIL:]]


class XapiConsoles(ConsoleCapture):
    """Guests' consoles through /local/logconsole/@: set to /tmp/console.%d for the run and
    put back afterwards, unless the host already logs consoles (then its files are used and
    left alone)."""

    def __init__(self, host: Host, xs: Xenstore) -> None:
        self.host, self.xs = host, xs
        self.had_dir = xs.read(LOGCONSOLE_DIR) is not None
        self.old = xs.read(LOGCONSOLE_KEY)
        self.ours = not (self.old and "%d" in self.old)
        self.pattern = CONSOLE_PATTERN if self.ours else str(self.old)
        if self.ours:
            xs.write(LOGCONSOLE_KEY, CONSOLE_PATTERN)

    def path(self, domid: int) -> str:
        """The domain's console log."""
        return self.pattern.replace("%d", str(domid))

    def lines(self, domid: int) -> list[str]:
        """The log's first and last lines (none if there is no log)."""
        result = self.host.run(
            ["head", "-c", str(CONSOLE_MAX_BYTES), "--", self.path(domid)],
            check=False,
            idempotent=True,
        )
        if result.returncode != 0:
            return []
        return console_excerpt(result.stdout)

    def undo_commands(self) -> list[list[str]]:
        """Back to the key (or its absence) found at the start."""
        if not self.ours:
            return []
        if not self.had_dir:
            return [["xenstore-rm", LOGCONSOLE_DIR]]
        if self.old is None:
            return [["xenstore-rm", LOGCONSOLE_KEY]]
        return [["xenstore-write", LOGCONSOLE_KEY, self.old]]

    def close(self, domids: list[int]) -> None:
        """The key back as it was; the run's logs removed (only those it caused)."""
        if not self.ours:
            return
        if not self.had_dir:
            self.xs.remove(LOGCONSOLE_DIR)
        elif self.old is None:
            self.xs.remove(LOGCONSOLE_KEY)
        else:
            self.xs.write(LOGCONSOLE_KEY, self.old)
        if domids:
            self.host.run(
                ["rm", "-f", "--", *(self.path(d) for d in domids)], check=False, idempotent=True
            )


class XapiToolstack(Toolstack):
    """XenAPI on a XenServer / XCP-ng host: the master or a pool member (over its socket xapi
    forwards to the master); kernels, starts and xenstore stay on the host we are on."""

    kind = "xapi"
    # ocaml/xapi/xapi_xenops.ml ~3569-3572: xenopsd's Failed_to_acknowledge_*_request.
    shutdown_ack_error = "VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT"
    suspend_ack_error = "VM_FAILED_SUSPEND_ACKNOWLEDGMENT"
    # A preserved crash is the only thing that leaves the VM Paused: xapi maps `preserve` to
    # Pause (ocaml/xapi/xapi_xenops.ml ~1166 on_action_behaviour), xenopsd's VM_check_state
    # runs on_crash for a crash, keeping Pause even within 120 s of the start (where it turns
    # Start into Shutdown), and on_shutdown for a poweroff (ocaml/xenopsd/lib/xenops_server.ml
    # ~2848-2870). No VM_CRASHED message tells it: that message is declared
    # (ocaml/xapi-consts/api_messages.ml ~105) but nothing in xen-api raises it.
    smoke_on_poweroff = "destroy"
    smoke_on_crash = "preserve"

    def __init__(
        self,
        host: Host,
        session_factory: SessionFactory | None = None,
        username: str = "root",
        password: str = "",
        open_member: MemberOpener | None = None,
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
            refused = details and details[0] == "SESSION_AUTHENTICATION_FAILED"
            if refused and (username, password) == ("root", ""):
                # Over a master's socket root needs no password; over a member's, xapi forwards
                # the login to the master, which does not trust it (ocaml/xapi/context.ml ~111).
                raise UsageError(
                    f"xapi on {host.name} refused root without a password: on a pool member "
                    "the login goes to the master; give root's password (--xapi-password-file)"
                ) from None
            raise _failure(exc, "login") from None
        self.api = self.session.xenapi
        self._host_ref: str | None = None
        self._master_ref: str | None = None
        self.open_member = open_member

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
        """The host we are connected to: where the kernel is copied to and whose xenstore we see.

        Its inventory's INSTALLATION_UUID names it, as xapi itself finds its own host record
        (ocaml/xapi/helpers.ml ~174 get_localhost). session.get_this_host cannot: over a pool
        member's socket xapi forwards the login to the master (ocaml/xapi/api_server.ml
        ~55-63; session.login_with_password is not on the whitelist, datamodel.ml ~10841),
        which creates the session with this_host = itself (xapi_session.ml ~1018). That
        answer is the fallback for a host without a readable inventory."""
        if self._host_ref is None:
            uuid = self._installation_uuid()
            if uuid:
                with contextlib.suppress(ToolstackError):
                    self._host_ref = str(self.call("host.get_by_uuid", uuid))
            if self._host_ref is None:
                self._host_ref = str(self.call("session.get_this_host", self.session._session))
        return self._host_ref

    def _installation_uuid(self) -> str:
        result = self.host.run(["cat", XAPI_INVENTORY], check=False, idempotent=True)
        if result.returncode != 0:
            return ""
        for line in result.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "INSTALLATION_UUID":
                return value.strip().strip("'\"")
        return ""

    def master(self) -> str:
        """The pool master's host ref (pool.get_master)."""
        if self._master_ref is None:
            pool = self.call("pool.get_all")[0]
            self._master_ref = str(self.call("pool.get_master", pool))
        return self._master_ref

    def is_pool_member(self) -> bool:
        """Connected to a pool member rather than to the master."""
        return self.this_host() != self.master()

    def kernel_dir(self) -> str:
        """From this host's software_version (a pool may mix xapi versions)."""
        return guest_kernel_dir(self.call("host.get_software_version", self.this_host()))

    def local_domid(self, vm: Vm) -> int | None:
        """The domid, if the domain runs on this host (VM.resident_on): only then is it in the
        xenstore we see; a domid of another pool member's domain names another guest here."""
        record = self.call("VM.get_record", vm.ref)
        domid = int(record["domid"])
        if domid < 0:
            return None
        resident = str(record.get("resident_on", NULL_REF))
        if resident not in (NULL_REF, self.this_host()):
            raise ToolstackError(
                "VM_NOT_ON_THIS_HOST",
                f"{vm.name!r} runs on pool member {self._host_label(resident)}, not on "
                f"{self._host_label(self.this_host())}: its xenstore is there (--host that member)",
            )
        return domid

    def _host_label(self, ref: str) -> str:
        try:
            return str(self.call("host.get_name_label", ref))
        except ToolstackError:
            return ref

    def _find_record(self, name: str) -> tuple[str, dict[str, Any]] | None:
        for ref in self.call("VM.get_by_name_label", name):
            record = self.call("VM.get_record", ref)
            if not record["is_a_template"] and not record["is_control_domain"]:
                return str(ref), record
        return None

    def find(self, name: str) -> Vm | None:
        """The first non-template VM with this name label."""
        found = self._find_record(name)
        return Vm(name=name, ref=found[0], uuid=found[1]["uuid"]) if found else None

    def exists(self, vm: Vm) -> bool:
        """By uuid: a destroyed VM's ref is HANDLE_INVALID for every call (its domid included),
        and another VM may carry the same name label."""
        try:
            self.call("VM.get_by_uuid", vm.uuid)
        except ToolstackError as exc:
            if exc.code == "UUID_INVALID":
                return False
            raise
        return True

    def define(self, spec: VmSpec) -> Vm:
        """VM.create, or bring the existing VM's domain type, kernel, args and memory up to
        date."""
        found = self._find_record(spec.name)
        if found is None:
            # Affinity: a plain VM.start (xe vm-start) picks this host, which has the kernel.
            ref = self.call("VM.create", vm_record(spec) | {"affinity": self.this_host()})
            return Vm(name=spec.name, ref=ref, uuid=self.call("VM.get_uuid", ref))
        ref, record = found
        existing = Vm(name=spec.name, ref=ref, uuid=record["uuid"])
        memory = str(spec.memory_mib * MIB)
        limits = ("memory_static_min", "memory_dynamic_min", "memory_dynamic_max")
        memory_changes = any(
            str(record.get(key)) != memory for key in (*limits, "memory_static_max")
        )
        state = str(record.get("power_state", ""))
        # Checked before anything changes: XAPI refuses set_memory_limits unless Halted
        # (ocaml/xapi/xapi_vm_lifecycle.ml ~37-40, changing_memory_limits), and a refusal after
        # the kernel was swapped would leave the VM half updated.
        if memory_changes and state != "Halted":
            raise ToolstackError(
                "VM_BAD_POWER_STATE",
                f"{spec.name!r} is {state.lower()}: its memory can only change while it is "
                "halted; nothing was changed (shut it down first, or keep its memory: "
                f"{int(record['memory_static_max']) // MIB} MiB)",
            )
        # Boot settings take effect at the next start, so they may change while it runs.
        # HVM_boot_policy "" first (xapi_vm.ml ~1675: that also sets domain_type pv), then the
        # domain type (xapi_vm.ml ~1656: that also derives HVM_boot_policy again).
        if record.get("HVM_boot_policy", "") != "":
            self.call("VM.set_HVM_boot_policy", ref, "")
        if record.get("HVM_boot_policy", "") != "" or record.get("domain_type") != spec.mode:
            self.call("VM.set_domain_type", ref, spec.mode)
        if record.get("PV_bootloader", "") != "":
            self.call("VM.set_PV_bootloader", ref, "")
        self.call("VM.set_PV_kernel", ref, spec.kernel)
        self.call("VM.set_PV_args", ref, spec.cmdline)
        if record.get("affinity") != self.this_host():
            self.call("VM.set_affinity", ref, self.this_host())
        if memory_changes:
            self.call("VM.set_memory_limits", ref, memory, memory, memory, memory)
        return existing

    def undefine(self, vm: Vm) -> None:
        """VM.destroy (the record; a test VM has no disks)."""
        self.call("VM.destroy", vm.ref)

    def start(self, vm: Vm, paused: bool = False) -> None:
        """VM.start_on this host, where the kernel is (start_paused: Paused)."""
        self.call("VM.start_on", vm.ref, self.this_host(), paused, False)

    def domid(self, vm: Vm) -> int | None:
        """VM.get_domid: -1 means no domain."""
        domid = int(self.call("VM.get_domid", vm.ref))
        return domid if domid >= 0 else None

    def power_state(self, vm: Vm) -> str:
        """Running, Halted, Suspended, Paused -> lower case."""
        return str(self.call("VM.get_power_state", vm.ref)).lower()

    def _snapshots(self, vm: Vm, timeout: float, late: Callable[[], str]) -> Iterator[Any]:
        """The VM's records as event.from delivers them; GuestTimeout(late()) at the deadline."""
        deadline = time.monotonic() + timeout
        token = ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout(late())
            result = self.call("event.from", [f"vm/{vm.ref}"], token, min(remaining, 30.0))
            token = result["token"]
            for event in result["events"]:
                if event.get("ref") == vm.ref:
                    yield event.get("snapshot") or {}

    def wait_power_state(self, vm: Vm, wanted: set[str], timeout: float = POWER_WAIT) -> str:
        """Follow the VM with event.from until its power_state is one of `wanted`."""
        states = "/".join(sorted(wanted))
        for snapshot in self._snapshots(
            vm, timeout, lambda: f"{vm.name!r} did not reach {states} within {timeout:g} s"
        ):
            state = str(snapshot.get("power_state", "")).lower()
            if state in wanted:
                return state
        raise AssertionError("unreachable: _snapshots ends by raising")

    def wait_stopped(self, vm: Vm, domid: int, timeout: float) -> Stopped:
        """Until the VM is Halted or Paused. With the smoke actions, Paused is a crash; Halted a
        poweroff or a suspend the toolstack did not ask for, which xenopsd shuts down ("VM has
        unexpectedly suspended", ocaml/xenopsd/lib/xenops_server.ml ~2869)."""
        state = self.wait_power_state(vm, {"halted", "paused"}, timeout)
        if state == "paused":
            return Stopped(frozenset({"crash"}), "power state paused (crashed, preserved)")
        return Stopped(frozenset({"poweroff", "suspend"}), f"power state {state}")

    def capture_consoles(self, xs: Xenstore) -> ConsoleCapture | None:
        """xenconsoled's logs through /local/logconsole/@."""
        return XapiConsoles(self.host, xs)

    def wait_new_domid(self, vm: Vm, old_domid: int, timeout: float) -> int:
        """Follow the VM record with event.from until it runs in a new domain.

        xapi sets VM.domid when xenopsd's event reaches it, after the new domain was introduced
        to xenstore (ocaml/xapi/xapi_xenops.ml ~2193, update_vm_internal): @introduceDomain
        comes earlier. A guest reboot within 120 s of start is delayed 15 s more
        (ocaml/xenopsd/xc/xenops_server_xen.ml ~3751, xenops_server.ml ~2885).
        """
        for snapshot in self._snapshots(
            vm,
            timeout,
            lambda: (
                f"{vm.name!r} did not come back within {timeout:g} s (still domain "
                f"{old_domid} or none)"
            ),
        ):
            if str(snapshot.get("power_state")) != "Running":
                continue
            domid = int(snapshot.get("domid", -1))
            if domid >= 0 and domid != old_domid:
                resident = str(snapshot.get("resident_on", NULL_REF))
                if resident not in (NULL_REF, self.this_host()):
                    return self.local_domid(vm) or domid  # raises VM_NOT_ON_THIS_HOST
                return domid
        raise AssertionError("unreachable: _snapshots ends by raising")

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

    def resume(self, vm: Vm, paused: bool = False) -> None:
        """VM.resume_on this host (start_paused: Paused)."""
        self.call("VM.resume_on", vm.ref, self.this_host(), paused, False)

    def unpause(self, vm: Vm) -> None:
        """VM.unpause."""
        self.call("VM.unpause", vm.ref)

    def checkpoint(self, vm: Vm) -> None:
        """VM.checkpoint, then its snapshot is destroyed (with the suspend image it holds).

        A running VM is suspended, its snapshot recorded, then "a slow resume": the guest
        carries on in a new domain (ocaml/xapi/xapi_vm_snapshot.ml ~75-145, checkpoint).
        VM.destroy leaves the snapshot's suspend VDI (ocaml/xapi/xapi_vm.ml ~726): it goes first.
        """
        snapshot = str(self.call("VM.checkpoint", vm.ref, f"{vm.name} checkpoint"))
        suspend_vdi = str(self.call("VM.get_suspend_VDI", snapshot))
        if suspend_vdi != NULL_REF:
            self.call("VDI.destroy", suspend_vdi)
        self.call("VM.destroy", snapshot)

    def migrate(self, vm: Vm, destination: str | None = None) -> None:
        """VM.pool_migrate to a pool member (by name label or uuid), or to this host.

        A VM restarts (reboot, crash restart) on the host it runs on: before it moves to
        another member, its kernel is copied there, to the same path.
        """
        target = self.this_host() if destination is None else self._member(destination)
        if target != self.this_host():
            self.copy_kernel_to(target, str(self.call("VM.get_PV_kernel", vm.ref)))
        self.call("VM.pool_migrate", vm.ref, target, {"live": "true"})

    def _member(self, destination: str) -> str:
        """A pool member's host ref, by name label or uuid."""
        refs = self.call("host.get_by_name_label", destination)
        return str(refs[0]) if refs else str(self.call("host.get_by_uuid", destination))

    def address_of(self, destination: str) -> str:
        """A pool member given by name label or uuid: its address (host.get_address)."""
        return str(self.call("host.get_address", self._member(destination)))

    def copy_kernel_to(self, member: str, path: str) -> None:
        """Copy the kernel at `path` on this host to the same path on another pool member."""
        address = str(self.call("host.get_address", member))
        if self.open_member is None:
            raise UsageError(f"cannot reach pool member {address} to copy the kernel there")
        # Through base64: command output travels as text.
        encoded = self.host.run(["base64", path], timeout=120, idempotent=True).stdout
        data = base64.b64decode(encoded)
        other = self.open_member(address)
        try:
            other.run(["mkdir", "-p", path.rsplit("/", 1)[0]], idempotent=True)
            other.run(atomic_write_command(path), input=data, idempotent=True)
        finally:
            other.close()

    def cleanup_commands_by_name(self, name: str) -> list[list[str]] | None:
        """xe, for a VM that VM.create may be about to make (no uuid yet)."""
        script = (
            'for uuid in $(xe vm-list name-label="$1" --minimal | tr , " "); do '
            'xe vm-shutdown --force uuid="$uuid"; xe vm-destroy uuid="$uuid"; done'
        )
        return [["sh", "-c", script, "xen-test-vm-cleanup", name]]

    def cleanup_commands(self, vm: Vm) -> list[list[str]]:
        """xe, by uuid (safe whatever the name)."""
        return [
            ["xe", "vm-shutdown", "--force", f"uuid={vm.uuid}"],
            ["xe", "vm-destroy", f"uuid={vm.uuid}"],
        ]


def _failure(exc: Any, method: str) -> ToolstackError:
    details = [str(d) for d in getattr(exc, "details", [])] or ["INTERNAL_ERROR"]
    return ToolstackError(details[0], f"{method} " + " ".join(details[1:]))
