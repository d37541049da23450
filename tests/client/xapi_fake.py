"""A FAKE XAPI: an XML-RPC server on 127.0.0.1 that answers like XAPI's documented wire format.

XAPI cannot run here, so the XAPI backend is tested against this fake. It follows the XenAPI
reference: every result is {"Status": "Success", "Value": ...} or {"Status": "Failure",
"ErrorDescription": [CODE, params...]}; the first argument of every call but login is the session
reference; int64 values travel as strings; event.from takes (classes, token, timeout) and returns
{"events", "valid_ref_counts", "token"}. It records every call so tests can assert the exact calls.
"""

from __future__ import annotations

import builtins
import itertools
import json
import socketserver
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

SESSION = "OpaqueRef:session-1"
POOL = "OpaqueRef:pool-1"
HOST = "OpaqueRef:host-1"
OTHER_HOST = "OpaqueRef:host-2"


def success(value: Any) -> dict[str, Any]:
    return {"Status": "Success", "Value": value}


def failure(code: str, *params: str) -> dict[str, Any]:
    return {"Status": "Failure", "ErrorDescription": [code, *params]}


@dataclass
class FakeXapi:
    """The model behind the fake: a pool of hosts and VMs."""

    software_version: dict[str, str] = field(
        default_factory=lambda: {"xapi": "24.20", "xapi_build": "24.20.0"}
    )
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    silent_guests: set[str] = field(default_factory=set)
    # With a FakeXenstore, running VMs get FAKE guests there and clean shutdown/reboot/suspend
    # ask them, following xenopsd (see m_VM_clean_shutdown).
    xs: FakeXenstore | None = None
    # None: root logs in without a password, as over a master's socket. A string: root's
    # password, which a pool member's socket needs (xapi forwards the login to the master).
    password: str | None = None
    # The host the client's session is on (session.get_this_host); HOST is the pool master.
    this_host: str = HOST
    hosts: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            HOST: {"name_label": "master1", "address": "192.0.2.1"},
            OTHER_HOST: {"name_label": "member2", "address": "192.0.2.2"},
        }
    )
    changed: threading.Condition = field(default_factory=threading.Condition)
    generation: int = 0
    _refs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _domids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def api_calls(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Calls with the session argument stripped."""
        return [(m, a[1:] if a and a[0] == SESSION else a) for m, a in self.calls]

    def _bump(self) -> None:
        with self.changed:
            self.generation += 1
            self.changed.notify_all()

    def set_power(self, ref: str, state: str, host: str | None = None) -> None:
        vm = self.vms[ref]
        old = int(vm["domid"])
        vm["power_state"] = state
        if state in ("Halted", "Suspended"):
            vm["resident_on"] = "OpaqueRef:NULL"
        elif host is not None:
            vm["resident_on"] = host
        vm["domid"] = str(next(self._domids)) if state == "Running" else "-1"
        if self.xs is not None:
            if old >= 0:
                self.xs.drop(old)
            if state == "Running":
                self.xs.boot(int(vm["domid"]), vm["name_label"])
        self._bump()

    def __post_init__(self) -> None:
        if self.xs is not None:
            self.xs.guest_action = self._guest_did

    def _guest_did(self, domid: int, action: str) -> None:
        """A guest shut itself down (a request the tester wrote, or `now`): what xenopsd's
        VM_check_state does, later (xapi learns from xenopsd's events), in compressed time."""
        ref = next((r for r, vm in self.vms.items() if vm["domid"] == str(domid)), None)
        if ref is None:
            return

        def later() -> None:
            time.sleep(0.3)
            vm = self.vms.get(ref)
            if vm is None or vm["domid"] != str(domid):
                return
            if action == "reboot" and vm["actions_after_reboot"] == "restart":
                self.set_power(ref, "Running", vm["resident_on"])
            elif action != "ignore":
                self.set_power(ref, "Halted")

        threading.Thread(target=later, daemon=True).start()

    def _ask_guest(self, ref: str, request: str) -> bool:
        """control/shutdown through the fake guest: whether it acknowledged (True without xs)."""
        vm = self.vms.get(ref)
        if self.xs is None or vm is None or vm["power_state"] != "Running":
            return True
        acked, _action = self.xs.shutdown_request(int(vm["domid"]), request)
        return acked

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        with self.changed:
            self.calls.append((method, params))
            self.changed.notify_all()
        if method == "session.login_with_password":
            return (
                success(SESSION)
                if params[0] == "root" and self.password in (None, params[1])
                else failure("SESSION_AUTHENTICATION_FAILED", params[0], "Authentication failure")
            )
        if not params or params[0] != SESSION:
            return failure("SESSION_INVALID", str(params[0]) if params else "")
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return failure("MESSAGE_METHOD_UNKNOWN", method)
        result: dict[str, Any] = handler(*params[1:])
        return result

    def _vm(self, ref: str) -> dict[str, Any] | None:
        return self.vms.get(ref)

    def m_session_logout(self) -> dict[str, Any]:
        return success("")

    def m_session_get_this_host(self, session: str) -> dict[str, Any]:
        return success(self.this_host) if session == SESSION else failure("SESSION_INVALID")

    def m_host_get_address(self, host: str) -> dict[str, Any]:
        return success(self.hosts[host]["address"])

    def m_host_get_name_label(self, host: str) -> dict[str, Any]:
        return success(self.hosts[host]["name_label"])

    def m_pool_get_all(self) -> dict[str, Any]:
        return success([POOL])

    def m_pool_get_master(self, pool: str) -> dict[str, Any]:
        return success(HOST) if pool == POOL else failure("HANDLE_INVALID", "pool", pool)

    def m_host_get_software_version(self, host: str) -> dict[str, Any]:
        return success(dict(self.software_version))

    def m_host_get_by_name_label(self, label: str) -> dict[str, Any]:
        return success([OTHER_HOST] if label == "member2" else [])

    def m_host_get_by_uuid(self, value: str) -> dict[str, Any]:
        return failure("UUID_INVALID", "host", value)

    def m_VM_get_by_name_label(self, label: str) -> dict[str, Any]:
        return success([ref for ref, vm in self.vms.items() if vm["name_label"] == label])

    def m_VM_get_by_uuid(self, value: str) -> dict[str, Any]:
        for ref, vm in self.vms.items():
            if vm["uuid"] == value:
                return success(ref)
        return failure("UUID_INVALID", "VM", value)

    def m_VM_get_record(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        return success(dict(vm)) if vm else failure("HANDLE_INVALID", "VM", ref)

    def m_VM_create(self, record: dict[str, Any]) -> dict[str, Any]:
        for key in ("memory_static_max", "VCPUs_max", "user_version"):
            if not isinstance(record.get(key), str):
                return failure("FIELD_TYPE_ERROR", key)
        ref = f"OpaqueRef:vm-{next(self._refs)}"
        self.vms[ref] = dict(record) | {
            "uuid": str(uuid.uuid4()),
            "power_state": "Halted",
            "domid": "-1",
            "is_control_domain": False,
            "resident_on": "OpaqueRef:NULL",
        }
        self._bump()
        return success(ref)

    def m_VM_get_uuid(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        return success(vm["uuid"]) if vm else failure("HANDLE_INVALID", "VM", ref)

    def _setter(self, field_name: str, ref: str, value: Any) -> dict[str, Any]:
        vm = self._vm(ref)
        if vm is None:
            return failure("HANDLE_INVALID", "VM", ref)
        vm[field_name] = value
        self._bump()
        return success("")

    def m_VM_get_PV_kernel(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        return success(vm["PV_kernel"]) if vm else failure("HANDLE_INVALID", "VM", ref)

    def m_VM_set_affinity(self, ref: str, value: str) -> dict[str, Any]:
        return self._setter("affinity", ref, value)

    def m_VM_set_PV_kernel(self, ref: str, value: str) -> dict[str, Any]:
        return self._setter("PV_kernel", ref, value)

    def m_VM_set_domain_type(self, ref: str, value: str) -> dict[str, Any]:
        # ocaml/xapi/xapi_vm.ml ~1656: also derives HVM_boot_policy (hvm: "BIOS order", else "").
        if value not in ("hvm", "pv", "pv_in_pvh", "pvh"):
            return failure("INVALID_VALUE", "domain_type", value)
        self._setter("HVM_boot_policy", ref, "BIOS order" if value == "hvm" else "")
        return self._setter("domain_type", ref, value)

    def m_VM_set_HVM_boot_policy(self, ref: str, value: str) -> dict[str, Any]:
        # ocaml/xapi/xapi_vm.ml ~1675: also sets domain_type ("" -> pv, else hvm).
        self._setter("domain_type", ref, "pv" if value == "" else "hvm")
        return self._setter("HVM_boot_policy", ref, value)

    def m_VM_set_PV_bootloader(self, ref: str, value: str) -> dict[str, Any]:
        return self._setter("PV_bootloader", ref, value)

    def m_VM_set_PV_args(self, ref: str, value: str) -> dict[str, Any]:
        return self._setter("PV_args", ref, value)

    def m_VM_set_memory_limits(
        self, ref: str, smin: str, smax: str, dmin: str, dmax: str
    ) -> dict[str, Any]:
        # ocaml/xapi/xapi_vm_lifecycle.ml ~37-40: changing_memory_limits only while Halted.
        vm = self._vm(ref)
        if vm is not None and vm["power_state"] != "Halted":
            return failure("VM_BAD_POWER_STATE", ref, "halted", vm["power_state"].lower())
        for key, value in (("min", smin), ("max", smax)):
            self._setter(f"memory_static_{key}", ref, value)
        for key, value in (("min", dmin), ("max", dmax)):
            self._setter(f"memory_dynamic_{key}", ref, value)
        return success("")

    def _power(self, ref: str, allowed: str, new: str, host: str | None = None) -> dict[str, Any]:
        vm = self._vm(ref)
        if vm is None:
            return failure("HANDLE_INVALID", "VM", ref)
        if vm["power_state"] not in allowed.split("|"):
            return failure(
                "VM_BAD_POWER_STATE", ref, allowed.split("|")[0].lower(), vm["power_state"].lower()
            )
        self.set_power(ref, new, host)
        return success("")

    def m_VM_start_on(self, ref: str, host: str, paused: bool, force: bool) -> dict[str, Any]:
        return self._power(ref, "Halted", "Running", host)

    def m_VM_get_domid(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        return success(vm["domid"]) if vm else failure("HANDLE_INVALID", "VM", ref)

    def m_VM_get_power_state(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        return success(vm["power_state"]) if vm else failure("HANDLE_INVALID", "VM", ref)

    def m_VM_clean_shutdown(self, ref: str) -> dict[str, Any]:
        # xenopsd (ocaml/xenopsd/lib/xenops_server.ml VM_shutdown): after the guest's ack it
        # waits for ANY shutdown of the domain and destroys it: whatever the guest does then
        # (power off, reboot, crash, suspend), the VM ends Halted and the call succeeds.
        if ref in self.silent_guests or not self._ask_guest(ref, "poweroff"):
            return failure("VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT", ref)
        return self._power(ref, "Running", "Halted")

    def m_VM_hard_shutdown(self, ref: str) -> dict[str, Any]:
        return self._power(ref, "Running|Paused|Suspended", "Halted")

    def m_VM_clean_reboot(self, ref: str) -> dict[str, Any]:
        if not self._ask_guest(ref, "reboot"):
            return failure("VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT", ref)
        return self._power(ref, "Running", "Running")

    def m_VM_suspend(self, ref: str) -> dict[str, Any]:
        if ref in self.silent_guests or not self._ask_guest(ref, "suspend"):
            return failure("VM_FAILED_SUSPEND_ACKNOWLEDGMENT", ref)
        return self._power(ref, "Running", "Suspended")

    def m_VM_resume_on(self, ref: str, host: str, paused: bool, force: bool) -> dict[str, Any]:
        return self._power(ref, "Suspended", "Running", host)

    def m_VM_pool_migrate(self, ref: str, host: str, options: dict[str, str]) -> dict[str, Any]:
        if host not in (HOST, OTHER_HOST):
            return failure("HANDLE_INVALID", "host", host)
        return self._power(ref, "Running", "Running", host)

    def m_VM_destroy(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        if vm is None:
            return failure("HANDLE_INVALID", "VM", ref)
        if vm["power_state"] != "Halted":
            return failure("VM_BAD_POWER_STATE", ref, "halted", vm["power_state"].lower())
        del self.vms[ref]
        self._bump()
        return success("")

    def m_event_from(self, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
        # Token = the model generation seen; "" = everything now. Blocks until something changes.
        with self.changed:
            if token:
                seen = int(token)
                self.changed.wait_for(lambda: self.generation > seen, timeout=float(timeout))
            generation = self.generation
        wanted = {c.split("/", 1)[1] for c in classes if "/" in c}
        events = [
            {
                "id": str(generation),
                "timestamp": "0",
                "class": "vm",
                "operation": "mod",
                "ref": ref,
                "snapshot": dict(vm),
            }
            for ref, vm in self.vms.items()
            if not wanted or ref in wanted
        ]
        if token and generation == int(token):
            events = []
        return success(
            {
                "events": events,
                "valid_ref_counts": {"vm": str(len(self.vms))},
                "token": str(generation),
            }
        )


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeXapiServer:
    """The fake on 127.0.0.1:<free port>, serving in a thread."""

    def __init__(self, model: FakeXapi) -> None:
        self.model = model
        self.server = SimpleXMLRPCServer(
            ("127.0.0.1", 0), _Handler, logRequests=False, allow_none=False
        )
        self.server.register_instance(_Dispatcher(model))
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}/"

    def __enter__(self) -> FakeXapiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _UnixHandler(_Handler):
    disable_nagle_algorithm = False  # a TCP option: unix sockets refuse it


class _UnixXmlRpcServer(
    socketserver.ThreadingMixIn, socketserver.UnixStreamServer, SimpleXMLRPCDispatcher
):
    daemon_threads = True
    logRequests = False

    def __init__(self, path: str) -> None:
        SimpleXMLRPCDispatcher.__init__(self, allow_none=False, encoding=None)
        socketserver.UnixStreamServer.__init__(self, path, _UnixHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a stalled call has gone: the late answer has nowhere to go.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeXapiSocket:
    """The fake on a unix socket, as xapi listens on /var/lib/xcp/xapi in dom0: the client's
    own transport reaches it where it would reach xapi's socket forwarded over SSH. Each call
    is served in its own thread (as xapi serves them), so one that stalls holds up no other."""

    def __init__(self, model: FakeXapi, path: str) -> None:
        self.model = model
        self.path = path
        self.server = _UnixXmlRpcServer(path)
        self.server.register_instance(_Dispatcher(model))
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeXapiSocket:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Dispatcher:
    def __init__(self, model: FakeXapi) -> None:
        self.model = model

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        return self.model.dispatch(method, params)


class FakeXenstore:
    """A FAKE xenstore holding FAKE test-kernel guests, for running smoke rows in unit tests.

    Values live in a dict; a guest answers control/testing the way PROTOCOL.md says (arming an
    `onshutdown` instruction, ignoring `now`/`ignore`) and the fake XAPI asks it about
    control/shutdown. Time is compressed: wait_for never waits longer than `max_wait`. It records
    the paths each wait watched, so a test can tell which events the client waited on.
    """

    def __init__(self, max_wait: float = 2.0) -> None:
        self.data: dict[str, str] = {}
        self.max_wait = max_wait
        self.watched: list[list[str]] = []
        self.lock = threading.RLock()
        # Set by FakeXapi: told when a guest shuts itself down (domid, what it does).
        self.guest_action: Any = None

    # ------------------------------------------------------------------ client side
    def read(self, path: str) -> str | None:
        with self.lock:
            return self.data.get(path)

    def list(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        with self.lock:
            return sorted(
                {p[len(prefix) :].split("/")[0] for p in self.data if p.startswith(prefix)}
            )

    def get_perms(self, path: str) -> builtins.list[str]:
        return ["n0", f"b{path.split('/')[3]}"]

    def write(self, path: str, value: str | bytes, perms: Any = None) -> None:
        text = value.decode() if isinstance(value, bytes) else value
        with self.lock:
            self.data[path] = text
            if path.endswith("/control/testing") and text:
                self._testing(int(path.split("/")[3]), text)
            elif path.endswith("/control/shutdown") and text:
                domid = int(path.split("/")[3])
                acked, action = self.shutdown_request(domid, text)
                if acked:
                    self.data[path] = ""
                if self.guest_action is not None:
                    self.guest_action(domid, action)

    def value_max(self) -> int:
        return 4064  # C xenstored's: the 4096-byte payload less the probe key's path

    def remove(self, path: str) -> None:
        with self.lock:
            for key in [k for k in self.data if k == path or k.startswith(path + "/")]:
                del self.data[key]

    def wait_for(self, paths: Any, check: Any, timeout: float, what: str) -> Any:
        from xen_test_vm.errors import GuestTimeout

        self.watched.append(list(paths))
        deadline = time.monotonic() + min(timeout, self.max_wait)
        while True:
            result = check()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise GuestTimeout(f"{what}: nothing within {timeout:g} s (fake xenstore)")
            time.sleep(0.01)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ guest side
    def home(self, domid: int) -> str:
        return f"/local/domain/{domid}"

    def boot(self, domid: int, name: str) -> None:
        home = self.home(domid)
        with self.lock:
            self.data[home] = ""
            self.data[f"{home}/name"] = name
            for key in ("poweroff", "reboot", "suspend"):
                self.data[f"{home}/control/feature-{key}"] = "1"
            status = {"version": "fake", "state": "ready", "armed": "", "resumes": "0"}
            for key, value in (status | {"last-error": ""}).items():
                self.data[f"{home}/data/test-vm/{key}"] = value

    def drop(self, domid: int) -> None:
        self.remove(self.home(domid))

    def _testing(self, domid: int, message: str) -> None:
        home = self.home(domid)
        body = json.loads(message)
        if body.get("when") == "onshutdown":
            self.data[f"{home}/data/test-vm/armed"] = message
            self.data[f"{home}/data/test-vm/state"] = "armed"
        self.data[f"{home}/control/testing"] = ""

    def shutdown_request(self, domid: int, request: str) -> tuple[bool, str]:
        """The guest reads control/shutdown: (acknowledged, what it then does)."""
        home = self.home(domid)
        with self.lock:
            armed = self.data.get(f"{home}/data/test-vm/armed", "")
            if not armed:
                return True, request
            body = json.loads(armed)
            self.data[f"{home}/data/test-vm/armed"] = ""
            self.data[f"{home}/data/test-vm/state"] = "ready"
            return body.get("ack") != "none", str(body["action"])


class FakeReaper:
    """Stands in for the host-side cleanup guard: records what is registered."""

    def __init__(self) -> None:
        self.run_id = "fake0001"
        self.dir = "/tmp/xen-test-vm.fake0001"
        self.registered: dict[str, list[list[str]]] = {}

    def register(self, key: str, commands: Any) -> None:
        self.registered[key] = [list(c) for c in commands]

    def unregister(self, key: str) -> None:
        self.registered.pop(key, None)

    def close(self, timeout: float = 120.0) -> None:
        pass


@dataclass
class FakeSession:
    """What smoke's Context uses of a Session: the host, its toolstack and its xenstore."""

    host: Any
    toolstack: Any
    xs: FakeXenstore
    kind: str = "xapi"
