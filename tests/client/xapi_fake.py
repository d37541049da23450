"""A FAKE XAPI: an XML-RPC server on 127.0.0.1 that answers like XAPI's documented wire format.

XAPI cannot run here, so the XAPI backend is tested against this fake. It follows the XenAPI
reference: every result is {"Status": "Success", "Value": ...} or {"Status": "Failure",
"ErrorDescription": [CODE, params...]}; the first argument of every call but login is the session
reference; int64 values travel as strings; event.from takes (classes, token, timeout) and returns
{"events", "valid_ref_counts", "token"}. It records every call so tests can assert the exact calls.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

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

    def set_power(self, ref: str, state: str) -> None:
        vm = self.vms[ref]
        vm["power_state"] = state
        vm["domid"] = str(next(self._domids)) if state == "Running" else "-1"
        self._bump()

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        with self.changed:
            self.calls.append((method, params))
            self.changed.notify_all()
        if method == "session.login_with_password":
            return (
                success(SESSION)
                if params[0] == "root"
                else failure("SESSION_AUTHENTICATION_FAILED", params[0], "")
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

    def m_VM_set_PV_kernel(self, ref: str, value: str) -> dict[str, Any]:
        return self._setter("PV_kernel", ref, value)

    def m_VM_set_PV_args(self, ref: str, value: str) -> dict[str, Any]:
        return self._setter("PV_args", ref, value)

    def m_VM_set_memory_limits(
        self, ref: str, smin: str, smax: str, dmin: str, dmax: str
    ) -> dict[str, Any]:
        return self._setter("memory_static_max", ref, smax)

    def _power(self, ref: str, allowed: str, new: str) -> dict[str, Any]:
        vm = self._vm(ref)
        if vm is None:
            return failure("HANDLE_INVALID", "VM", ref)
        if vm["power_state"] not in allowed.split("|"):
            return failure(
                "VM_BAD_POWER_STATE", ref, allowed.split("|")[0].lower(), vm["power_state"].lower()
            )
        self.set_power(ref, new)
        return success("")

    def m_VM_start_on(self, ref: str, host: str, paused: bool, force: bool) -> dict[str, Any]:
        return self._power(ref, "Halted", "Running")

    def m_VM_get_domid(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        return success(vm["domid"]) if vm else failure("HANDLE_INVALID", "VM", ref)

    def m_VM_get_power_state(self, ref: str) -> dict[str, Any]:
        vm = self._vm(ref)
        return success(vm["power_state"]) if vm else failure("HANDLE_INVALID", "VM", ref)

    def m_VM_clean_shutdown(self, ref: str) -> dict[str, Any]:
        if ref in self.silent_guests:
            return failure("VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT", ref)
        return self._power(ref, "Running", "Halted")

    def m_VM_hard_shutdown(self, ref: str) -> dict[str, Any]:
        return self._power(ref, "Running|Paused|Suspended", "Halted")

    def m_VM_clean_reboot(self, ref: str) -> dict[str, Any]:
        return self._power(ref, "Running", "Running")

    def m_VM_suspend(self, ref: str) -> dict[str, Any]:
        if ref in self.silent_guests:
            return failure("VM_FAILED_SUSPEND_ACKNOWLEDGMENT", ref)
        return self._power(ref, "Running", "Suspended")

    def m_VM_resume_on(self, ref: str, host: str, paused: bool, force: bool) -> dict[str, Any]:
        return self._power(ref, "Suspended", "Running")

    def m_VM_pool_migrate(self, ref: str, host: str, options: dict[str, str]) -> dict[str, Any]:
        if host not in (HOST, OTHER_HOST):
            return failure("HANDLE_INVALID", "host", host)
        return self._power(ref, "Running", "Running")

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


class _Dispatcher:
    def __init__(self, model: FakeXapi) -> None:
        self.model = model

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, Any]:
        return self.model.dispatch(method, params)
