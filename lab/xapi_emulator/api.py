"""The XenAPI subset the xen-test-vm client uses, on an in-memory database (an EMULATOR).

Each behaviour names the xen-api source it follows (paths in xapi-project/xen-api, snapshot
e2ee48d6883e, 2026-08-21). What is not named here is not emulated.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid as uuidlib
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import domains
from .consoles import ConsoleLogs
from .domains import DomainConfig, DomainError
from .xenstore import Xenstore

NULL = "OpaqueRef:NULL"
MIB = 1024 * 1024
# ocaml/xapi/xapi_xenops.ml ~348: the only directory direct-boot kernels may come from.
ALLOWED_BOOT_DIRS = ["/var/lib/xcp/guest/"]
SR_DIR = "/var/lib/xapi-emulator/sr"

# xenstore's SHUTDOWN_* codes (xen/include/public/sched.h)
SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND, SHUTDOWN_CRASH = 0, 1, 2, 3


class ApiError(Exception):
    """A XenAPI failure: ErrorDescription = [code, *params]."""

    def __init__(self, code: str, *params: str) -> None:
        super().__init__(code, *params)
        self.description = [code, *[str(p) for p in params]]


@dataclass
class Timeouts:
    """xenopsd's defaults; tests may shorten them (never the default)."""

    # ocaml/xenopsd/lib/xenops_server.ml ~38: domain_shutdown_ack_timeout = 60.
    shutdown_ack: float = 60.0
    # ocaml/xenopsd/lib/xenopsd.ml ~82: vm_suspend_ack_timeout = 30.
    suspend_ack: float = 30.0
    # ocaml/xenopsd/lib/xenopsd.ml ~80: vm_suspend_timeout = 1200.
    suspend: float = 1200.0
    # ocaml/xenopsd/xc/xenops_server_xen.ml ~3751 minimum_reboot_delay = 120. and
    # ocaml/xenopsd/lib/xenops_server.ml ~2885 VM_delay 15.
    minimum_reboot_delay: float = 120.0
    reboot_delay: float = 15.0
    # xapi's clean shutdown total (the ack wait is min(ack, this)); xenopsd then waits the rest.
    clean_shutdown_total: float = 1200.0


@dataclass
class HostConfig:
    """Who this emulated host is."""

    name: str = "xen-lab"
    address: str = "127.0.0.1"
    xapi_version: str = "26.1.3"
    password: str = ""
    master_address: str = ""  # non-empty: this host is a pool member of that master
    master_port: int = 80
    # Shared by the pool's emulators; guards their internal calls as xapi's pool secret guards
    # a member's login to the master (ocaml/xapi/xapi_session.ml ~762 slave_login_common).
    pool_secret: str = ""


# What a member tells the master about its VMs and itself: the fields its domains decide.
# In xapi the member's own xapi writes them into the master's database (a pool member's database
# is the master's: ocaml/xapi/context.ml ~105 default_database, Db_ref.Remote on a slave).
PUSHED_FIELDS = {
    "VM": ("power_state", "domid", "resident_on"),
    "host": ("resident_VMs",),
}
# VM operations that run where the VM's domain is: the master hands them to the member that
# runs it (ocaml/xapi/message_forwarding.ml ~1505 forward_vm_op: to the host the VM is resident
# on; ~2049 start_on and resume_on: to the host given).
DOMAIN_OPS = {
    "VM.start", "VM.start_on", "VM.resume", "VM.resume_on", "VM.clean_shutdown",
    "VM.hard_shutdown", "VM.shutdown", "VM.clean_reboot", "VM.hard_reboot", "VM.pause",
    "VM.unpause", "VM.suspend", "VM.checkpoint", "VM.pool_migrate",
}  # fmt: skip


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def new_ref() -> str:
    return f"OpaqueRef:{new_uuid()}"


def now_iso() -> str:
    return time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime())


def vm_defaults() -> dict[str, Any]:
    """Every VM field the client may read, with datamodel defaults (ocaml/idl/datamodel_vm.ml)."""
    return {
        "name_label": "",
        "name_description": "",
        "user_version": "1",
        "is_a_template": False,
        "is_default_template": False,
        "is_a_snapshot": False,
        "snapshot_of": NULL,
        "snapshots": [],
        "is_control_domain": False,
        "power_state": "Halted",
        "domid": "-1",
        "resident_on": NULL,
        "affinity": NULL,
        "memory_target": str(256 * MIB),
        "memory_static_max": str(256 * MIB),
        "memory_dynamic_max": str(256 * MIB),
        "memory_dynamic_min": str(256 * MIB),
        "memory_static_min": str(256 * MIB),
        "VCPUs_params": {},
        "VCPUs_max": "1",
        "VCPUs_at_startup": "1",
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "",
        "HVM_boot_params": {},
        "HVM_shadow_multiplier": 1.0,
        "platform": {},
        "PCI_bus": "",
        "other_config": {},
        "xenstore_data": {},
        "recommendations": "",
        "ha_always_run": False,
        "ha_restart_priority": "",
        "tags": [],
        "blocked_operations": {},
        "allowed_operations": [],
        "current_operations": {},
        "protection_policy": NULL,
        "is_snapshot_from_vmpp": False,
        "appliance": NULL,
        "start_delay": "0",
        "shutdown_delay": "0",
        "order": "0",
        "suspend_SR": NULL,
        "suspend_VDI": NULL,
        "version": "0",
        "generation_id": "",
        "hardware_platform_version": "0",
        "has_vendor_device": False,
        "domain_type": "unspecified",
        "VBDs": [],
        "VIFs": [],
        "consoles": [],
        "guest_metrics": NULL,
        "metrics": NULL,
        "last_booted_record": "",
        "snapshot_time": "19700101T00:00:00Z",
        "transportable_snapshot_id": "",
        "parent": NULL,
        "children": [],
        "bios_strings": {},
    }


# Fields a client may not set with VM.set_<field> (ocaml/idl/datamodel_vm.ml: read-only).
VM_READ_ONLY = {
    "uuid",
    "power_state",
    "domid",
    "resident_on",
    "is_control_domain",
    "is_a_snapshot",
    "snapshot_of",
    "snapshots",
    "allowed_operations",
    "current_operations",
    "memory_static_max",
    "memory_static_min",
    "memory_dynamic_max",
    "memory_dynamic_min",
    "metrics",
    "guest_metrics",
    "suspend_VDI",
}


@dataclass
class Running:
    """Per-VM domain bookkeeping xenopsd keeps in its VM_DB."""

    config: DomainConfig
    domid: int
    start_time: float


@dataclass
class Obj:
    """One database row with the generations event.from needs."""

    cls: str
    ref: str
    record: dict[str, Any]
    created: int
    modified: int


@dataclass
class Database:
    """Objects by ref; every change bumps the generation (ocaml/xapi/xapi_event.ml semantics)."""

    objects: dict[str, Obj] = field(default_factory=dict)
    deleted: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)
    generation: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)
    # A pool member tells its master (cls, ref, changes); called outside the lock.
    listener: Callable[[str, str, dict[str, Any]], None] | None = None

    def add(self, cls: str, record: dict[str, Any], ref: str | None = None) -> str:
        with self.cond:
            self.generation += 1
            ref = ref or new_ref()
            record.setdefault("uuid", new_uuid())
            self.objects[ref] = Obj(cls, ref, record, self.generation, self.generation)
            self.cond.notify_all()
        if self.listener is not None and cls == "message":
            self.listener(cls, ref, dict(record))
        return ref

    def get(self, cls: str, ref: str) -> dict[str, Any]:
        obj = self.objects.get(ref)
        if obj is None or obj.cls != cls:
            raise ApiError("HANDLE_INVALID", cls, ref)
        return obj.record

    def update(self, ref: str, **changes: Any) -> None:
        with self.cond:
            obj = self.objects[ref]
            obj.record.update(changes)
            self.generation += 1
            obj.modified = self.generation
            self.cond.notify_all()
        pushed = {k: v for k, v in changes.items() if k in PUSHED_FIELDS.get(obj.cls, ())}
        if self.listener is not None and pushed:
            self.listener(obj.cls, ref, pushed)

    def remove(self, ref: str) -> None:
        with self.cond:
            obj = self.objects.pop(ref)
            self.generation += 1
            self.deleted.append((self.generation, obj.cls, ref, dict(obj.record)))
            self.cond.notify_all()

    def of_class(self, cls: str) -> list[Obj]:
        return [o for o in self.objects.values() if o.cls == cls]


class Emulator:
    """The XenAPI methods; `call` dispatches one XML-RPC request."""

    def __init__(
        self,
        xs: Xenstore,
        host: HostConfig | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.xs = xs
        self.host_config = host or HostConfig()
        self.timeouts = timeouts or Timeouts()
        self.db = Database()
        self.sessions: dict[str, str] = {}
        self.running: dict[str, Running] = {}
        self.vm_locks: dict[str, threading.Lock] = {}
        self.busy: set[str] = set()
        # The pool's other hosts this one talks to: host ref -> address (xen-lab-N: the dom0s
        # resolve it over their link, the client's ssh_config knows it too).
        self.peers: dict[str, str] = {}
        self._setup()
        self._monitor = threading.Thread(target=self._watch_domains, daemon=True)
        self._monitor.start()
        self.consoles = ConsoleLogs(xs, self._running_domains)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        self.sr = self.db.add(
            "SR",
            {
                "name_label": "Emulated suspend SR",
                "name_description": f"a directory ({SR_DIR}) standing in for a suspend SR",
                "type": "file",
                "content_type": "",
                "shared": False,
                "other_config": {},
            },
        )
        version = self.host_config.xapi_version
        major_minor = ".".join(version.split(".")[:2])
        self.host = self.db.add(
            "host",
            {
                "name_label": self.host_config.name,
                "hostname": self.host_config.name,
                "address": self.host_config.address,
                "enabled": True,
                "API_version_major": "2",
                "API_version_minor": "21",
                "API_version_vendor": "XAPI emulator (xen-test-vm lab)",
                # ocaml/xapi/create_misc.ml ~556 and xapi_globs.ml ~177: xapi = "MAJOR.MINOR",
                # xapi_build = the full version ("0.0.dev", git_id "dev" for a dev build).
                "software_version": {
                    "xapi": major_minor,
                    "xapi_build": version,
                    # ocaml/util/xapi_version.ml ~28-42: git_id = what follows MAJOR.MINOR.
                    "git_id": version.split(".", 2)[2] if version.count(".") >= 2 else "",
                    "product_brand": "XAPI emulator",
                    "emulator": "yes: not XenServer, not XCP-ng",
                },
                "suspend_image_sr": self.sr,
                "resident_VMs": [],
                "other_config": {},
            },
        )
        self.pool = self.db.add(
            "pool",
            {
                "name_label": "",
                "master": self.host,
                "default_SR": self.sr,
                "suspend_image_SR": self.sr,
                "other_config": {},
            },
        )
        dom0 = vm_defaults() | {
            "name_label": f"Control domain on host: {self.host_config.name}",
            "is_control_domain": True,
            "power_state": "Running",
            "domid": "0",
            "resident_on": self.host,
            "domain_type": "pv",
        }
        self.dom0 = self.db.add("VM", dom0)
        self.db.update(self.host, resident_VMs=[self.dom0])

    # ------------------------------------------------------------------ dispatch

    def call(self, method: str, params: list[Any], via_unix: bool) -> Any:
        """One XenAPI call: returns the Value or raises ApiError."""
        if method == "session.login_with_password":
            return self.session_login_with_password(via_unix, *params)
        if method.startswith("session.slave_local"):
            raise ApiError("MESSAGE_METHOD_UNKNOWN", method)
        if method.startswith("pool_internal."):
            return self._internal(method, params)
        if not params or params[0] not in self.sessions:
            raise ApiError("SESSION_INVALID", str(params[0]) if params else "")
        args = params[1:]
        if method in DOMAIN_OPS and args:
            where = self._runs_on(method, args)
            if where in self.peers:
                return self._delegate(where, method, args)
        cls, _, name = method.partition(".")
        handler = getattr(self, f"{cls}_{name}".replace(".", "_"), None)
        if handler is not None:
            try:
                return handler(*args) if name != "logout" else handler(params[0])
            except TypeError as exc:
                if "positional argument" in str(exc):
                    raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", method) from None
                raise
        return self._generic(cls, name, args, method)

    def _generic(self, cls: str, name: str, args: list[Any], method: str) -> Any:
        if cls not in ("VM", "host", "pool", "SR", "message", "VM_metrics"):
            raise ApiError("MESSAGE_METHOD_UNKNOWN", method)
        if name == "get_all":
            return [o.ref for o in self.db.of_class(cls)]
        if name == "get_all_records":
            return {o.ref: self._record(o) for o in self.db.of_class(cls)}
        if name == "get_by_uuid":
            for o in self.db.of_class(cls):
                if o.record["uuid"] == args[0]:
                    return o.ref
            raise ApiError("UUID_INVALID", cls, str(args[0]))
        if name == "get_by_name_label":
            return [o.ref for o in self.db.of_class(cls) if o.record.get("name_label") == args[0]]
        if not args:
            raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", method)
        record = self.db.get(cls, args[0])
        if name == "get_record":
            return self._record(self.db.objects[args[0]])
        if name.startswith("get_") and name[4:] in record:
            return record[name[4:]]
        if name.startswith("set_") and name[4:] in record and cls == "VM":
            key = name[4:]
            if key in VM_READ_ONLY:
                raise ApiError("MESSAGE_METHOD_UNKNOWN", method)
            self.db.update(args[0], **{key: args[1]})
            return ""
        for prefix in ("add_to_", "remove_from_"):
            if name.startswith(prefix) and isinstance(record.get(name[len(prefix) :]), dict):
                key = name[len(prefix) :]
                value = dict(record[key])
                if prefix == "add_to_":
                    if args[1] in value:
                        raise ApiError("MAP_DUPLICATE_KEY", cls, key, args[0], args[1])
                    value[args[1]] = args[2]
                else:
                    value.pop(args[1], None)
                self.db.update(args[0], **{key: value})
                return ""
        raise ApiError("MESSAGE_METHOD_UNKNOWN", method)

    def _record(self, obj: Obj) -> dict[str, Any]:
        return {k: v for k, v in obj.record.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ pool

    def _peer_call(self, address: str, method: str, *args: Any) -> Any:
        """An internal call to another emulator of the pool, over its TCP port on the link."""
        port = self.host_config.master_port
        proxy = xmlrpc.client.ServerProxy(f"http://{address}:{port}/", allow_none=False)
        try:
            result = getattr(proxy, method)(self.host_config.pool_secret, *args)
        except (OSError, xmlrpc.client.Error) as exc:
            raise ApiError("HOST_OFFLINE", address, repr(exc)) from None
        if result.get("Status") != "Success":
            raise ApiError(*result.get("ErrorDescription", ["INTERNAL_ERROR", method]))
        return result["Value"]

    def join_master(self) -> None:
        """A member announces itself: the master adds this host's record (same ref and uuid)
        and the member learns the master's host ref. xapi's pool.join does more (it replaces
        the member's database with the master's); the client sees the outcome: both hosts in
        host.get_all, pool.get_master the master (ocaml/xapi/xapi_pool.ml ~1905 join_common)."""
        address = self.host_config.master_address
        record = self._record(self.db.objects[self.host])
        deadline = time.monotonic() + 60
        while True:
            try:
                master = self._peer_call(address, "pool_internal.join", self.host, record)
                break
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        self.peers[str(master)] = address
        self.db.listener = self._push

    def _push(self, cls: str, ref: str, changes: dict[str, Any]) -> None:
        """A member's domain changed state: the master's database says so (see PUSHED_FIELDS).
        Called in order, from the thread that made the change."""
        try:
            if cls == "message":
                self._peer_call(self.host_config.master_address, "pool_internal.message", changes)
            else:
                self._peer_call(
                    self.host_config.master_address, "pool_internal.changed", cls, ref, changes
                )
        except ApiError as exc:
            print(f"xapi-emulator: could not tell the master about {ref}: {exc}", flush=True)

    def _internal(self, method: str, params: list[Any]) -> Any:
        secret = self.host_config.pool_secret
        if not secret or not params or params[0] != secret:
            raise ApiError("SESSION_AUTHENTICATION_FAILED", "pool", "wrong pool secret")
        args = params[1:]
        name = method.partition(".")[2]
        if name == "join":
            ref, record = args
            if self.host_config.master_address:
                raise ApiError("HOST_IS_SLAVE", self.host_config.master_address)
            if ref not in self.db.objects:
                self.db.add("host", dict(record), ref=str(ref))
            self.peers[str(ref)] = str(record["address"])
            return self.host
        if name == "changed":
            cls, ref, changes = args
            obj = self.db.objects.get(str(ref))
            if obj is not None and obj.cls == cls:  # a VM destroyed meanwhile stays so
                self.db.update(obj.ref, **changes)
            return ""
        if name == "message":
            (record,) = args
            self.db.add("message", dict(record))
            return ""
        if name == "run":
            method_name, vm, record, call_args = args
            self._mirror(str(vm), record)
            return self._dispatch(str(method_name), list(call_args))
        if name == "adopt":
            vm, record = args
            self._mirror(str(vm), record)
            self._adopt(str(vm))
            return ""
        raise ApiError("MESSAGE_METHOD_UNKNOWN", method)

    def _dispatch(self, method: str, args: list[Any]) -> Any:
        cls, _, name = method.partition(".")
        return getattr(self, f"{cls}_{name}")(*args)

    def _runs_on(self, method: str, args: list[Any]) -> str:
        """The host whose domains an operation touches (message_forwarding.ml: the VM's
        resident_on; start_on/resume_on: the host given; VM.start: its affinity, as xapi's
        host choice prefers it)."""
        vm = str(args[0])
        if vm not in self.db.objects:
            return NULL
        record = self.db.get("VM", vm)
        if method in ("VM.start_on", "VM.resume_on") and len(args) > 1:
            return str(args[1])
        if method in ("VM.start", "VM.resume"):
            return str(record["affinity"])
        return str(record["resident_on"])

    def _delegate(self, host: str, method: str, args: list[Any]) -> Any:
        record = self._record(self.db.objects[str(args[0])])
        return self._peer_call(self.peers[host], "pool_internal.run", method, args[0], record, args)

    def _mirror(self, vm: str, record: dict[str, Any]) -> None:
        """This member's copy of a master's VM record: what it needs to build and run the
        domain. Its power state, domid and residence are the member's own (it runs it)."""
        settings = {k: v for k, v in record.items() if k not in PUSHED_FIELDS["VM"]}
        if vm in self.db.objects:
            self.db.objects[vm].record.update(settings)
            return
        copy = dict(record)
        if copy["resident_on"] != self.host:
            copy |= {"power_state": "Halted", "domid": "-1", "resident_on": NULL}
        self.db.add("VM", copy, ref=vm)
        self.vm_locks.setdefault(vm, threading.Lock())

    def _adopt(self, vm: str) -> None:
        """The domain `xl migrate` brought here (named config.xl_name, paused): xenopsd's
        receiving side builds the xenstore tree and unpauses it (xenops_server.ml ~2608
        VM_receive_memory, then VM_unpause)."""
        record = self.db.get("VM", vm)
        config = self._domain_config(record)
        with self._op(vm):
            self._became_running(vm, config, self._new_domid(config.xl_name), False)

    def _migrate_to_peer(self, vm: str, record: dict[str, Any], host: str) -> None:
        """xenopsd's VM_migrate to another host: the guest is asked to suspend (30 s ack), its
        memory goes over the link (`xl migrate`, ssh between the dom0s), the receiving host
        unpauses it in a NEW domain (resumes 1) (ocaml/xenopsd/lib/xenops_server.ml ~2349
        VM_migrate: the memory sent with the live flag, ~2608 VM_receive_memory there).

        As in _save, the suspend request is xenopsd's; xl then asks again through libxl and
        the helper that clears that second request answers it."""
        domid = self._domid(vm)
        self._check_suspendable(vm, domid)
        running = self.running[vm]
        self._guest_suspends(vm, domid)
        with self._answering_libxl(domid):
            try:
                domains.migrate(running.config, domid, self.peers[host])
            except DomainError as exc:
                # xl resumes the domain here when the migration fails.
                raise ApiError("INTERNAL_ERROR", str(exc)) from None
        self.running.pop(vm, None)
        self.consoles.stopped(domid)
        self._resident(vm, False)
        if self.host_config.master_address:
            # A member's own copy: the master's record is what the receiving host sets.
            self.db.objects[vm].record.update(power_state="Halted", domid="-1", resident_on=NULL)
        self._peer_call(
            self.peers[host],
            "pool_internal.adopt",
            vm,
            self._record(self.db.objects[vm]) | {"resident_on": NULL},
        )

    # ------------------------------------------------------------------ session

    def session_login_with_password(
        self, via_unix: bool, uname: str = "", pwd: str = "", *_rest: Any
    ) -> str:
        # ocaml/xapi/xapi_session.ml ~960: over the local unix socket the caller is root
        # without a password; ~998: an unauthenticated (TCP) caller on a pool member gets
        # HOST_IS_SLAVE [master address]; otherwise local superuser = root with its password.
        if not via_unix:
            if self.host_config.master_address:
                raise ApiError("HOST_IS_SLAVE", self.host_config.master_address)
            if uname != "root" or pwd != self.host_config.password:
                raise ApiError("SESSION_AUTHENTICATION_FAILED", uname, "Authentication failure")
        ref = new_ref()
        self.sessions[ref] = uname
        return ref

    def session_logout(self, session: str) -> str:
        self.sessions.pop(session, None)
        return ""

    def session_get_this_host(self, session: str) -> str:
        return self.host

    def session_get_this_user(self, session: str) -> str:
        return NULL

    # ------------------------------------------------------------------ events

    def event_from(self, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
        """ocaml/xapi/xapi_event.ml `from`: everything changed since token, or wait."""
        since = int(token) if token.strip().isdigit() else 0
        deadline = time.monotonic() + float(timeout)
        with self.db.cond:
            while True:
                events = self._events_since(classes, since)
                remaining = deadline - time.monotonic()
                if events or remaining <= 0:
                    return {
                        "events": events,
                        "valid_ref_counts": {},
                        "token": str(self.db.generation),
                    }
                self.db.cond.wait(remaining)

    def _events_since(self, classes: list[str], since: int) -> list[dict[str, Any]]:
        def wanted(cls: str, ref: str) -> bool:
            cls = cls.lower()
            return any(c == "*" or c.lower() == cls or c == f"{cls}/{ref}" for c in classes)

        out: list[dict[str, Any]] = []
        for obj in self.db.objects.values():
            if obj.modified > since and wanted(obj.cls, obj.ref):
                out.append(
                    {
                        "id": str(obj.modified),
                        "timestamp": now_iso(),
                        "class": obj.cls.lower(),
                        "operation": "add" if obj.created > since else "mod",
                        "ref": obj.ref,
                        "snapshot": self._record(obj),
                    }
                )
        for gen, cls, ref, record in self.db.deleted:
            if gen > since and wanted(cls, ref):
                out.append(
                    {
                        "id": str(gen),
                        "timestamp": now_iso(),
                        "class": cls.lower(),
                        "operation": "del",
                        "ref": ref,
                        "snapshot": record,
                    }
                )
        out.sort(key=lambda e: int(e["id"]))
        return out

    # ------------------------------------------------------------------ messages

    def _message(self, name: str, priority: int, vm: str, body: str) -> None:
        record = self.db.get("VM", vm)
        self.db.add(
            "message",
            {
                "name": name,
                "priority": str(priority),
                "cls": "VM",
                "obj_uuid": record["uuid"],
                "timestamp": now_iso(),
                "body": body,
            },
        )

    def message_get_since(self, since: Any) -> dict[str, Any]:
        return {o.ref: self._record(o) for o in self.db.of_class("message")}

    def message_destroy(self, ref: str) -> str:
        self.db.get("message", ref)
        self.db.remove(ref)
        return ""

    # ------------------------------------------------------------------ VM records

    def VM_create(self, record: dict[str, Any]) -> str:
        """ocaml/xapi/xapi_vm.ml `create`: defaults for what is missing, almost no checks."""
        full = vm_defaults()
        for key, value in record.items():
            if key in full and key not in VM_READ_ONLY - {
                "memory_static_max",
                "memory_static_min",
                "memory_dynamic_max",
                "memory_dynamic_min",
            }:
                full[key] = value
        # ocaml/xapi/xapi_vm.ml ~622 + xapi_vm_helpers.ml ~54: an unspecified domain type is
        # derived from HVM_boot_policy ("" -> pv, else hvm).
        if full["domain_type"] in ("", "unspecified"):
            full["domain_type"] = "pv" if full["HVM_boot_policy"] == "" else "hvm"
        if full["domain_type"] not in ("hvm", "pv", "pv_in_pvh", "pvh"):
            raise ApiError("INVALID_VALUE", "domain_type", str(full["domain_type"]))
        full["uuid"] = new_uuid()
        full["power_state"] = "Halted"
        full["domid"] = "-1"
        full["resident_on"] = NULL
        ref = self.db.add("VM", full)
        self.vm_locks[ref] = threading.Lock()
        return ref

    def VM_set_domain_type(self, vm: str, value: str) -> str:
        # ocaml/xapi/xapi_vm.ml ~1656: "unspecified" is INVALID_VALUE; the HVM_boot_policy is
        # derived again (xapi_vm_helpers.ml ~67: hvm -> "BIOS order", else "").
        self._vm(vm)
        if value not in ("hvm", "pv", "pv_in_pvh", "pvh"):
            raise ApiError("INVALID_VALUE", "domain_type", str(value))
        self.db.update(
            vm, domain_type=value, HVM_boot_policy="BIOS order" if value == "hvm" else ""
        )
        return ""

    def VM_set_HVM_boot_policy(self, vm: str, value: str) -> str:
        # ocaml/xapi/xapi_vm.ml ~1675: also sets domain_type from the policy.
        self._vm(vm)
        self.db.update(vm, HVM_boot_policy=value, domain_type="pv" if value == "" else "hvm")
        return ""

    def VM_set_memory_limits(
        self, vm: str, static_min: str, static_max: str, dynamic_min: str, dynamic_max: str
    ) -> str:
        # ocaml/xapi/xapi_vm_lifecycle.ml ~37-40: changing_memory_limits only while Halted.
        record = self._vm(vm)
        self._assert_power(vm, record, ["Halted"])
        values = [int(static_min), int(dynamic_min), int(dynamic_max), int(static_max)]
        # ocaml/xapi/vm_memory_constraints.ml: static_min <= dynamic_min <= dynamic_max <=
        # static_max, else MEMORY_CONSTRAINT_VIOLATION.
        if values != sorted(values) or values[0] < 0:
            raise ApiError(
                "MEMORY_CONSTRAINT_VIOLATION",
                "Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max "
                "<= static_max",
            )
        self.db.update(
            vm,
            memory_static_min=static_min,
            memory_dynamic_min=dynamic_min,
            memory_dynamic_max=dynamic_max,
            memory_static_max=static_max,
            memory_target=dynamic_min,
        )
        return ""

    def VM_destroy(self, vm: str) -> str:
        record = self._vm(vm)
        with self._op(vm):
            # ocaml/xapi/xapi_vm_lifecycle.ml: destroy is allowed on Halted and Suspended.
            self._assert_power(vm, record, ["Halted", "Suspended"])
            self._drop_suspend_image(record)
            self.db.remove(vm)
        return ""

    # ------------------------------------------------------------------ helpers

    def _vm(self, vm: str) -> dict[str, Any]:
        record = self.db.get("VM", vm)
        if record["is_control_domain"]:
            raise ApiError(
                "OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain"
            )
        return record

    def _assert_power(self, vm: str, record: dict[str, Any], allowed: list[str]) -> None:
        # ocaml/xapi/xapi_vm_lifecycle.ml ~287 report_power_state_error:
        # VM_BAD_POWER_STATE [vm; expected states, lower case, ", "-joined; actual].
        if record["power_state"] not in allowed:
            raise ApiError(
                "VM_BAD_POWER_STATE",
                vm,
                ", ".join(s.lower() for s in allowed),
                str(record["power_state"]).lower(),
            )

    @contextlib.contextmanager
    def _op(self, vm: str, recheck: bool = True) -> Iterator[None]:
        """xenopsd runs one operation per VM at a time; the monitor waits for it too.

        A domain that shut down during a failed operation (a guest that powered off after an
        ack xenopsd never accepted) is checked once it ends: xenopsd queues VM_check_state on
        the VM's queue behind the operation (ocaml/xenopsd/lib/xenops_server.ml ~2848).
        """
        lock = self.vm_locks.setdefault(vm, threading.Lock())
        try:
            with lock:
                self.busy.add(vm)
                try:
                    yield
                finally:
                    self.busy.discard(vm)
        except BaseException:
            if recheck:
                with contextlib.suppress(DomainError):
                    self._check_after_op(vm)
            raise

    def _check_after_op(self, vm: str) -> None:
        running = self.running.get(vm)
        if running is None or vm not in self.db.objects:
            return
        if self.db.get("VM", vm)["power_state"] != "Running":
            return
        state = domains.state(running.domid)
        if state is None or state.shut_down:
            threading.Thread(target=self._check_state, args=(vm,), daemon=True).start()

    def _kernel_path(self, filename: str, name: str = "kernel") -> str:
        """ocaml/xapi/xapi_xenops.ml ~350-381 kernel_path, refusal ~489 INVALID_VALUE."""
        try:
            real = os.path.realpath(filename, strict=True)
        except FileNotFoundError:
            raise ApiError("INVALID_VALUE", name, filename, "File does not exist") from None
        except OSError as exc:
            raise ApiError("INVALID_VALUE", name, filename, str(exc)) from None
        if not os.path.isfile(real):
            raise ApiError("INVALID_VALUE", name, filename, "Is not a regular file")
        if not any(real.startswith(d) for d in ALLOWED_BOOT_DIRS):
            reason = "Is not in any of the allowed kernel directories: [{}]".format(
                "; ".join(ALLOWED_BOOT_DIRS)
            )
            raise ApiError("INVALID_VALUE", name, filename, reason)
        return real

    def _domain_config(self, record: dict[str, Any]) -> DomainConfig:
        domain_type = record["domain_type"]
        if domain_type == "hvm":
            raise ApiError("FEATURE_RESTRICTED", "the XAPI emulator runs no HVM VMs")
        kernel = self._kernel_path(record["PV_kernel"])
        ramdisk = self._kernel_path(record["PV_ramdisk"], "ramdisk") if record["PV_ramdisk"] else ""
        return DomainConfig(
            uuid=record["uuid"],
            domain_type=domain_type,
            kernel=kernel,
            cmdline=record["PV_args"],
            ramdisk=ramdisk,
            memory_mib=max(1, int(record["memory_target"]) // MIB),
            maxmem_mib=max(1, int(record["memory_static_max"]) // MIB),
            vcpus=int(record["VCPUs_at_startup"]),
            max_vcpus=int(record["VCPUs_max"]),
        )

    def _prepare_domain(self, vm: str, domid: int) -> None:
        """The xenstore tree xenopsd gives a new domain (ocaml/xenopsd/xc/domain.ml ~544-660).

        control/, data/ and the other guest directories are owned by the guest
        (xenbus_utils.ml ~78 rwperm_for_guest: owner = domid, others none), the name is the
        VM's name label, and the platform feature keys are written under control/.
        """
        record = self.db.get("VM", vm)
        home = f"/local/domain/{domid}"
        guest_dirs = [
            "device", "feature", "error", "drivers", "control", "attr", "xenserver/attr", "data",
            "messages", "vm-data", "hvmloader", "rrd",
        ]  # fmt: skip

        def build(tx: int) -> None:
            for directory in guest_dirs:
                self.xs.mkdir(f"{home}/{directory}", tx)
                self.xs.set_perms(f"{home}/{directory}", [f"n{domid}"], tx)
            self.xs.write(f"{home}/name", record["name_label"], tx)

        self.xs.transaction(build)
        for key, value in record["xenstore_data"].items():
            self.xs.write(f"{home}/{key}", value)
        self.xs.write(f"{home}/control/platform-feature-multiprocessor-suspend", "1")
        self.xs.write(f"{home}/control/platform-feature-xs_reset_watches", "1")
        self.xs.write(f"{home}/control/has-vendor-device", "0")
        self.xs.write(f"{home}/unique-domain-id", new_uuid())

    def _boot(self, vm: str, paused: bool) -> None:
        record = self.db.get("VM", vm)
        config = self._domain_config(record)
        try:
            domains.create(config)
        except DomainError as exc:
            self._destroy_named(config.xl_name)
            raise ApiError("INTERNAL_ERROR", str(exc)) from None
        self._became_running(vm, config, self._new_domid(config.xl_name), paused)

    def _domids_named(self, xl_name: str) -> list[int]:
        """Domains whose xenstore name is xl_name (xl's own lookup is a process per call)."""
        found = []
        for entry in self.xs.directory("/local/domain"):
            if entry.isdigit() and self.xs.read(f"/local/domain/{entry}/name") == xl_name:
                found.append(int(entry))
        return found

    def _new_domid(self, xl_name: str) -> int:
        found = self._domids_named(xl_name)
        if len(found) != 1:
            self._destroy_named(xl_name)
            raise ApiError("INTERNAL_ERROR", f"xl made {len(found)} domains named {xl_name}")
        return found[0]

    def _destroy_named(self, xl_name: str) -> None:
        """A half-made domain must not stay behind."""
        for domid in self._domids_named(xl_name):
            with contextlib.suppress(DomainError):
                domains.destroy(domid)

    def _running_domains(self) -> dict[int, str]:
        return {r.domid: r.config.xl_name for r in list(self.running.values())}

    def _became_running(self, vm: str, config: DomainConfig, domid: int, paused: bool) -> None:
        try:
            self._prepare_domain(vm, domid)
            self.consoles.started(domid, config.xl_name)
            if not paused:
                domains.unpause(domid)
        except (DomainError, OSError) as exc:
            with contextlib.suppress(DomainError):
                domains.destroy(domid)
            raise ApiError("INTERNAL_ERROR", str(exc)) from None
        self.running[vm] = Running(config, domid, time.monotonic())
        self.db.update(
            vm,
            power_state="Paused" if paused else "Running",
            domid=str(domid),
            resident_on=self.host,
        )
        self._resident(vm, True)

    def _resident(self, vm: str, present: bool) -> None:
        vms = [r for r in self.db.get("host", self.host)["resident_VMs"] if r != vm]
        self.db.update(self.host, resident_VMs=[*vms, vm] if present else vms)

    def _halted(self, vm: str) -> None:
        running = self.running.pop(vm, None)
        if running is not None:
            with contextlib.suppress(DomainError):
                domains.destroy(running.domid)
            self.consoles.stopped(running.domid)
        if vm in self.db.objects:
            self.db.update(vm, power_state="Halted", domid="-1", resident_on=NULL)
            self._resident(vm, False)

    def _domid(self, vm: str) -> int:
        running = self.running.get(vm)
        if running is None:
            raise ApiError("VM_BAD_POWER_STATE", vm, "running", "halted")
        return running.domid

    def _shutdown_path(self, domid: int) -> str:
        return f"/local/domain/{domid}/control/shutdown"

    def _request_shutdown(self, domid: int, reason: str, ack_timeout: float) -> bool:
        """ocaml/xenopsd/xc/domain.ml ~735-805: shutdown + shutdown_wait_for_ack.

        In ONE transaction: fail if the domain's directory is gone, remove control/shutdown if
        present, write the reason. Then wait until the value becomes "" or the key disappears
        (both count as the acknowledgement). False when the wait timed out.
        """
        path = self._shutdown_path(domid)
        home = f"/local/domain/{domid}"

        def rewrite(tx: int) -> None:
            if self.xs.read(home, tx) is None:
                raise ApiError("VM_BAD_POWER_STATE", "", "running", "halted")
            self.xs.rm(path, tx)
            self.xs.write(path, reason, tx)

        self.xs.transaction(rewrite)

        def acked() -> bool | None:
            value = self.xs.read(path)
            return True if value in ("", None) else None

        return self.xs.wait_for([path], acked, ack_timeout) is not None

    def _wait_shutdown(self, domid: int, timeout: float) -> domains.DomainState | None:
        """ocaml/xenopsd/xc/xenops_server_xen.ml ~2760 wait_shutdown: ANY shutdown counts."""

        def down() -> domains.DomainState | None:
            state = domains.state(domid)
            if state is None:
                return domains.DomainState(domid, "d", None)
            return state if state.shut_down else None

        return self.xs.wait_for(["@releaseDomain"], down, timeout)

    # ------------------------------------------------------------------ power operations

    def VM_start(self, vm: str, start_paused: bool = False, force: bool = False) -> str:
        record = self._vm(vm)
        with self._op(vm):
            # ocaml/xapi/xapi_vm_lifecycle.ml: start/start_on only while Halted.
            self._assert_power(vm, record, ["Halted"])
            self._boot(vm, bool(start_paused))
        self._message("VM_STARTED", 5, vm, f"VM '{record['name_label']}' started")
        return ""

    def VM_start_on(
        self, vm: str, host: str, start_paused: bool = False, force: bool = False
    ) -> str:
        self.db.get("host", host)
        return self.VM_start(vm, start_paused, force)

    def VM_pause(self, vm: str) -> str:
        return self._set_paused(vm, "Running", domains.pause, "Paused")

    def VM_unpause(self, vm: str) -> str:
        return self._set_paused(vm, "Paused", domains.unpause, "Running")

    def _set_paused(
        self, vm: str, allowed: str, change: Callable[[int], None], power_state: str
    ) -> str:
        """VM.pause (from Running) and VM.unpause (from Paused): xl (un)pause the domain."""
        record = self._vm(vm)
        with self._op(vm):
            self._assert_power(vm, record, [allowed])
            change(self._domid(vm))
            self.db.update(vm, power_state=power_state)
        return ""

    def VM_clean_shutdown(self, vm: str) -> str:
        """xenops_server.ml ~1301/1932 VM_shutdown with a timeout: request, ack, wait, destroy.

        After the ack the guest may power off, reboot, crash or suspend: any shutdown ends in
        Halted and the call succeeds (VM_shutdown_domain then VM_destroy).
        """
        record = self._vm(vm)
        with self._op(vm):
            self._assert_power(vm, record, ["Running"])
            domid = self._domid(vm)
            started = time.monotonic()
            total = self.timeouts.clean_shutdown_total
            ack = min(self.timeouts.shutdown_ack, total)
            if not self._request_shutdown(domid, "poweroff", ack):
                # ocaml/xapi/xapi_xenops.ml ~3569: Failed_to_acknowledge_shutdown_request.
                raise ApiError("VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT", vm)
            remaining = max(0.0, total - (time.monotonic() - started))
            if self._wait_shutdown(domid, remaining) is None:
                raise ApiError("VM_SHUTDOWN_TIMEOUT", vm, str(total))
            self._halted(vm)
        self._message("VM_SHUTDOWN", 4, vm, f"VM '{record['name_label']}' shutdown")
        return ""

    def VM_hard_shutdown(self, vm: str) -> str:
        record = self._vm(vm)
        with self._op(vm):
            # ocaml/xapi/xapi_vm_lifecycle.ml: hard_shutdown on Paused, Suspended, Running.
            self._assert_power(vm, record, ["Paused", "Suspended", "Running"])
            if record["power_state"] == "Suspended":
                self._drop_suspend_image(record)
            self._halted(vm)
        self._message("VM_SHUTDOWN", 4, vm, f"VM '{record['name_label']}' shutdown")
        return ""

    def VM_shutdown(self, vm: str) -> str:
        """message_forwarding.ml: a suspended VM just loses its image; otherwise clean."""
        record = self._vm(vm)
        if record["power_state"] == "Suspended":
            return self.VM_hard_shutdown(vm)
        return self.VM_clean_shutdown(vm)

    def _reboot(self, vm: str, record: dict[str, Any]) -> None:
        """VM_reboot: the old domain is destroyed and a new one built (a new domid)."""
        running = self.running.pop(vm)
        with contextlib.suppress(DomainError):
            domains.destroy(running.domid)
        self.consoles.stopped(running.domid)
        self.db.update(vm, domid="-1")
        try:
            self._boot(vm, False)
        except ApiError:
            self._halted(vm)
            raise

    def VM_clean_reboot(self, vm: str) -> str:
        """xenops_server.ml ~1415 VM_reboot with a timeout: request, ack, wait, new domain."""
        record = self._vm(vm)
        with self._op(vm):
            self._assert_power(vm, record, ["Running"])
            domid = self._domid(vm)
            if not self._request_shutdown(domid, "reboot", self.timeouts.shutdown_ack):
                raise ApiError("VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT", vm)
            if self._wait_shutdown(domid, self.timeouts.clean_shutdown_total) is None:
                raise ApiError("VM_SHUTDOWN_TIMEOUT", vm, str(self.timeouts.clean_shutdown_total))
            self._reboot(vm, record)
        self._message("VM_REBOOTED", 5, vm, f"VM '{record['name_label']}' rebooted cleanly")
        return ""

    def VM_hard_reboot(self, vm: str) -> str:
        record = self._vm(vm)
        with self._op(vm):
            # ocaml/xapi/xapi_vm_lifecycle.ml: hard_reboot on Paused and Running.
            self._assert_power(vm, record, ["Paused", "Running"])
            self._reboot(vm, record)
        self._message("VM_REBOOTED", 5, vm, f"VM '{record['name_label']}' rebooted")
        return ""

    # ------------------------------------------------------------------ suspend and friends

    def _suspend_sr(self, vm: str, record: dict[str, Any]) -> str:
        """ocaml/xapi/helpers.ml ~1160: VM.suspend_SR, else pool's, else host's; else error."""
        pool = self.db.get("pool", self.pool)
        host = self.db.get("host", self.host)
        for candidate in (record["suspend_SR"], pool["suspend_image_SR"], host["suspend_image_sr"]):
            if candidate != NULL and candidate in self.db.objects:
                return str(candidate)
        raise ApiError("VM_NO_SUSPEND_SR", vm)

    def _guest_suspends(self, vm: str, domid: int) -> None:
        """xenopsd's suspend request, then wait for the guest to suspend its domain."""
        if not self._request_shutdown(domid, "suspend", self.timeouts.suspend_ack):
            # ocaml/xapi/xapi_xenops.ml ~3571: Failed_to_acknowledge_suspend_request.
            raise ApiError("VM_FAILED_SUSPEND_ACKNOWLEDGMENT", vm)
        state = self._wait_shutdown(domid, self.timeouts.suspend)
        if state is None:
            raise ApiError("VM_SUSPEND_TIMEOUT", vm, str(self.timeouts.suspend))
        if state.reason != SHUTDOWN_SUSPEND:
            # The guest did something else; xenopsd's save would fail the same way.
            self._halted(vm)
            raise ApiError("INTERNAL_ERROR", f"domain {domid} shut down with reason {state.reason}")

    def _check_suspendable(self, vm: str, domid: int) -> None:
        """ocaml/xapi/xapi_vm_lifecycle.ml ~207-211 + xapi_guest_agent.ml ~264: a guest with
        data/cant_suspend_reason and control/feature-suspend refuses suspend, checkpoint and
        migration with VM_NON_SUSPENDABLE, whatever its domain type. PV and PVH guests have
        implicit support otherwise (has_definitely_booted_pv, l.169-179): no feature keys."""
        home = f"/local/domain/{domid}"
        reason = self.xs.read(f"{home}/data/cant_suspend_reason")
        if reason is not None and self.xs.read(f"{home}/control/feature-suspend") is not None:
            raise ApiError("VM_NON_SUSPENDABLE", vm, reason)

    def _save(self, vm: str, record: dict[str, Any]) -> str:
        """xenops_server_xen.ml ~2900-2945 VM.save: the suspend callback asks the guest
        (30 s ack), waits for the domain to suspend (1200 s), then the memory is saved.

        xl save asks the guest again through libxl; the emulator has already done that the
        xenopsd way, so while xl save runs it clears libxl's second request on the suspended
        (no longer running) domain, which libxl takes as the acknowledgement.
        """
        domid = self._domid(vm)
        self._check_suspendable(vm, domid)
        sr = self._suspend_sr(vm, record)
        self._guest_suspends(vm, domid)
        directory = f"{SR_DIR}/{self.db.get('SR', sr)['uuid']}"
        os.makedirs(directory, exist_ok=True)
        image = f"{directory}/{record['uuid']}.suspend"
        with self._answering_libxl(domid):
            try:
                domains.save(domid, image)
            except DomainError as exc:
                raise ApiError("INTERNAL_ERROR", str(exc)) from None
        self.running.pop(vm, None)
        self.consoles.stopped(domid)
        return image

    @contextlib.contextmanager
    def _answering_libxl(self, domid: int) -> Iterator[None]:
        """While xl saves or migrates the suspended domain, clear libxl's own suspend request
        (libxl takes the cleared key as the acknowledgement)."""
        stop = threading.Event()
        clearer = threading.Thread(
            target=self._clear_libxl_request, args=(domid, stop), daemon=True
        )
        clearer.start()
        try:
            yield
        finally:
            stop.set()
            clearer.join()

    def _clear_libxl_request(self, domid: int, stop: threading.Event) -> None:
        path = self._shutdown_path(domid)
        token, events = self.xs.watch([path])
        try:
            while not stop.is_set():
                if self.xs.read(path):
                    self.xs.rm(path)
                with contextlib.suppress(Exception):
                    events.get(timeout=0.2)
        finally:
            self.xs.unwatch(token, [path])

    def _drop_suspend_image(self, record: dict[str, Any]) -> None:
        image = record.get("_suspend_image", "")
        if image:
            with contextlib.suppress(OSError):
                os.unlink(image)
        record.pop("_suspend_image", None)

    def _restore(self, vm: str, image: str, paused: bool) -> None:
        record = self.db.get("VM", vm)
        config = self._domain_config(record)
        try:
            try:
                domains.restore(config, image)
            except DomainError as exc:
                self._destroy_named(config.xl_name)
                raise ApiError("INTERNAL_ERROR", str(exc)) from None
            self._became_running(vm, config, self._new_domid(config.xl_name), paused)
        except ApiError:
            # The image stays: the VM is Suspended and may be resumed or shut down again.
            record["_suspend_image"] = image
            self.db.update(vm, power_state="Suspended", domid="-1", resident_on=NULL)
            self._resident(vm, False)
            raise
        record.pop("_suspend_image", None)
        with contextlib.suppress(OSError):
            os.unlink(image)

    def VM_suspend(self, vm: str) -> str:
        record = self._vm(vm)
        with self._op(vm):
            self._assert_power(vm, record, ["Running"])
            image = self._save(vm, record)
            record["_suspend_image"] = image
            self.db.update(vm, power_state="Suspended", domid="-1", resident_on=NULL)
            self._resident(vm, False)
        self._message("VM_SUSPENDED", 5, vm, f"VM '{record['name_label']}' suspended")
        return ""

    def VM_resume(self, vm: str, start_paused: bool = False, force: bool = False) -> str:
        record = self._vm(vm)
        with self._op(vm):
            self._assert_power(vm, record, ["Suspended"])
            self._restore(vm, record["_suspend_image"], bool(start_paused))
        self._message("VM_RESUMED", 5, vm, f"VM '{record['name_label']}' resumed")
        return ""

    def VM_resume_on(
        self, vm: str, host: str, start_paused: bool = False, force: bool = False
    ) -> str:
        self.db.get("host", host)
        return self.VM_resume(vm, start_paused, force)

    def VM_checkpoint(self, vm: str, new_name: str) -> str:
        """ocaml/xapi/xapi_vm_snapshot.ml ~75-145: a running VM is suspended, its snapshot
        recorded, then "a slow resume": the guest comes back in a NEW domain (resumes + 1)."""
        record = self._vm(vm)
        with self._op(vm):
            self._assert_power(vm, record, ["Paused", "Suspended", "Running"])
            was_running = record["power_state"] == "Running"
            if was_running:
                image = self._save(vm, record)
                self.db.update(vm, power_state="Suspended", domid="-1")
            snapshot = {k: v for k, v in record.items() if not k.startswith("_")}
            snapshot |= {
                "name_label": new_name,
                "is_a_snapshot": True,
                "snapshot_of": vm,
                "power_state": "Suspended",
                "domid": "-1",
                "resident_on": NULL,
                "snapshot_time": now_iso(),
                "uuid": new_uuid(),
                "other_config": dict(record["other_config"]),
            }
            ref = self.db.add("VM", snapshot)
            self.vm_locks[ref] = threading.Lock()
            self.db.update(vm, snapshots=[*record["snapshots"], ref])
            if was_running:
                self._restore(vm, image, False)
        return ref

    def VM_pool_migrate(self, vm: str, host: str, options: dict[str, str]) -> str:
        """To this host: the guest is asked to suspend (ack 30 s) and continues in a NEW domain,
        as in xenopsd's localhost migration (xenops_server.ml VM_migrate -> VM_save). Memory
        goes through a save image instead of a live pre-copy stream: the guest cannot tell."""
        record = self._vm(vm)
        if host not in self.peers:
            self.db.get("host", host)
        with self._op(vm):
            self._assert_power(vm, record, ["Running"])
            if host in self.peers:
                self._migrate_to_peer(vm, record, host)
                return ""
            if host != self.host:
                raise ApiError("HOST_OFFLINE", host)
            image = self._save(vm, record)
            self._restore(vm, image, False)
        return ""

    # ------------------------------------------------------------------ guest-initiated events

    def _watch_domains(self) -> None:
        token, events = self.xs.watch(["@releaseDomain"])
        del token
        while True:
            events.get()
            while not events.empty():
                events.get_nowait()
            try:
                self._check_states()
            except Exception as exc:  # the monitor must survive anything
                print(f"xapi-emulator: domain monitor: {exc!r}", flush=True)

    def _check_states(self) -> None:
        shut = [vm for vm, r in list(self.running.items()) if vm not in self.busy]
        if not shut:
            return
        current = domains.states()
        for vm in shut:
            running = self.running.get(vm)
            if running is None:
                continue
            state = current.get(running.domid)
            if state is None or state.shut_down:
                threading.Thread(target=self._check_state, args=(vm,), daemon=True).start()

    def _check_state(self, vm: str) -> None:
        """ocaml/xenopsd/lib/xenops_server.ml ~2848-2895 VM_check_state, after any operation
        in progress on that VM (it runs on the VM's queue)."""
        with self._op(vm, recheck=False):
            running = self.running.get(vm)
            if running is None or vm not in self.db.objects:
                return
            state = domains.state(running.domid)
            if state is not None and not state.shut_down:
                return
            record = self.db.get("VM", vm)
            run_time = time.monotonic() - running.start_time
            reason = None if state is None else state.reason
            # xapi_xenops.ml ~1166 on_action_behaviour: preserve -> Pause,
            # coredump_and_restart -> Coredump; Start, coredump_and_destroy -> Coredump; Shutdown,
            # restart | rename_restart -> Start, destroy -> Shutdown.
            behaviour = {
                "preserve": ["pause"],
                "coredump_and_restart": ["start"],
                "coredump_and_destroy": ["shutdown"],
                "restart": ["start"],
                "rename_restart": ["start"],
                "destroy": ["shutdown"],
            }
            if reason == SHUTDOWN_REBOOT:
                actions = behaviour.get(record["actions_after_reboot"], ["start"])
            elif reason == SHUTDOWN_POWEROFF or reason is None:
                actions = behaviour.get(record["actions_after_shutdown"], ["shutdown"])
            elif reason == SHUTDOWN_CRASH:
                actions = behaviour.get(record["actions_after_crash"], ["start"])
                if run_time < self.timeouts.minimum_reboot_delay:
                    # "A VM which crashes too quickly should be shutdown" (~2858).
                    actions = ["shutdown" if a == "start" else a for a in actions]
            else:
                # Needs_suspend: "VM has unexpectedly suspended" -> Shutdown (~2866).
                actions = ["shutdown"]
            for action in actions:
                if action == "shutdown":
                    self._halted(vm)
                elif action == "pause" and record["power_state"] != "Paused":
                    # The domain is kept as it is (shut down, not destroyed): Paused. Nothing
                    # else tells a crash: api_messages.ml ~105 declares VM_CRASHED, but nothing
                    # in xen-api raises it.
                    self.db.update(vm, power_state="Paused")
                elif action == "start":
                    if run_time < self.timeouts.minimum_reboot_delay:
                        time.sleep(self.timeouts.reboot_delay)
                    try:
                        self._reboot(vm, record)
                    except ApiError as exc:
                        print(f"xapi-emulator: restart of {vm} failed: {exc}", flush=True)


def dump(value: Any) -> str:
    """For debugging output."""
    return json.dumps(value, default=str)


Handler = Callable[..., Any]
