"""The plain-Xen backend: xl over SSH, one config file per VM under the remote directory."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from . import xl_writer
from .errors import RemoteCommandError, ToolstackError, UsageError
from .remote import Host, shell_command
from .toolstack import Stopped, Toolstack, Vm, VmSpec
from .xenstore import Xenstore, find_domids_by_name

DEFAULT_DIR = "/var/lib/xen-test-vm"
ACK_FAILURE = "ACK_TIMEOUT"
# libxl waits 60 s for a guest to acknowledge a control/shutdown request.
ACK_WAIT = 60.0
SLOW = 180.0
# SCHEDOP_shutdown reason codes (xen/include/public/sched.h), as `xl list -v` shows them.
SHUTDOWN_REASONS = {0: "poweroff", 1: "reboot", 2: "suspend", 3: "crash"}


def xl_string(value: str) -> str:
    """A double-quoted xl config string; a value xl cannot be given is the user's error."""
    try:
        return xl_writer.xl_string(value)
    except xl_writer.XlStringError as exc:
        raise UsageError(str(exc)) from None


def config_slug(name: str) -> str:
    """A file name for a VM: readable part plus a hash, whatever the VM name holds."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40].strip("._") or "vm"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def xl_config_text(settings: Mapping[str, str | int]) -> str:
    """The house's one xl config writer (xl_writer.py), a value xl cannot be given reported as
    the user's error."""
    try:
        return xl_writer.xl_config_text(settings)
    except xl_writer.XlStringError as exc:
        raise UsageError(str(exc)) from None


def xl_config(spec: VmSpec, cpuid: str = "") -> str:
    """The xl domain configuration for a test VM (`cpuid`: a libxl cpuid policy, if any).

    A PV-in-PVH domain's shim takes its memory from the domain's: as XAPI does, the VM gets its
    own memory and the shim more on top.
    """
    shim = spec.mode == "pv_in_pvh"
    extra = xl_writer.shim_mib(spec.memory_mib) if shim else 0
    return xl_config_text(
        {
            "name": spec.name,
            "type": "pvh" if shim else spec.mode,
            **({"pvshim": 1} if shim else {}),
            **({"cpuid": cpuid} if cpuid else {}),
            "kernel": spec.kernel,
            "cmdline": spec.cmdline,
            "memory": spec.memory_mib + extra,
            "maxmem": spec.memory_mib + extra,
            "vcpus": spec.vcpus,
            "on_poweroff": spec.on_poweroff,
            "on_reboot": spec.on_reboot,
            "on_crash": spec.on_crash,
        }
    )


def classify_xl_failure(operation: str, error: RemoteCommandError) -> ToolstackError:
    """Map xl's messages to stable error codes (ACK_TIMEOUT is the guest not answering)."""
    text = error.stderr
    if "didn't acknowledge" in text or "acknowledgement of" in text or "timed out" in text:
        code = ACK_FAILURE
    elif any(m in text.lower() for m in ("not found", "invalid domain", "does not exist")):
        code = "NO_SUCH_DOMAIN"
    else:
        code = "XL_FAILED"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    detail = next((ln for ln in lines if "acknowledge" in ln), None) or " | ".join(
        errors[:3] or lines[-1:]
    )
    status = error.returncode
    how = f"killed by signal {status - 128}" if 128 < status < 160 else f"exit {status}"
    return ToolstackError(code, f"xl {operation} ({how}): {detail}")


class XlToolstack(Toolstack):
    """xl on a plain Xen host."""

    kind = "xl"
    shutdown_ack_error = ACK_FAILURE
    suspend_ack_error = ACK_FAILURE
    # xl keeps a shut-down or crashed domain: its shutdown reason can be read.
    smoke_on_poweroff = "preserve"
    smoke_on_crash = "preserve"

    def __init__(
        self,
        host: Host,
        remote_dir: str = DEFAULT_DIR,
        state_dir: str | None = None,
        xenstore: Callable[[], Xenstore] | None = None,
        domid_lookup: Callable[[Xenstore, str], list[int]] = find_domids_by_name,
    ) -> None:
        super().__init__(host)
        self.xenstore = xenstore
        # How a name becomes domids: a scan of every domain's name unless the caller keeps an
        # index (the load generator's hundreds of domains).
        self.domid_lookup = domid_lookup
        self.remote_dir = remote_dir.rstrip("/") or "/"
        # Beside the configs unless a run asked for its own (for_run).
        self.state_dir = state_dir or f"{self.remote_dir}/saved"
        self._shim_cpuid: str | None = None  # read from the host on the first PV-in-PVH VM

    def for_run(self, state_dir: str) -> XlToolstack:
        """This toolstack saving into a run's own scratch directory (save images are big)."""
        return XlToolstack(
            self.host,
            self.remote_dir,
            state_dir=state_dir,
            xenstore=self.xenstore,
            domid_lookup=self.domid_lookup,
        )

    def kernel_dir(self) -> str:
        """xl boots a kernel from any path."""
        return self.remote_dir

    def config_path(self, name: str) -> str:
        """Where the VM's xl config lives."""
        return f"{self.remote_dir}/vms/{config_slug(name)}.cfg"

    def save_path(self, vm: Vm) -> str:
        """Where `xl save` writes the VM's image."""
        return f"{self.state_dir}/{config_slug(vm.name)}.save"

    def _xl(self, operation: str, *args: str, timeout: float = SLOW) -> str:
        read_only = operation in ("list", "info", "domid")
        try:
            return self.host.run(
                ["xl", operation, *args], timeout=timeout, idempotent=read_only
            ).stdout
        except RemoteCommandError as exc:
            raise classify_xl_failure(operation, exc) from None

    def find(self, name: str) -> Vm | None:
        """A VM is registered when its config file exists."""
        path = self.config_path(name)
        if self.host.run(["test", "-f", path], check=False, idempotent=True).returncode == 0:
            return Vm(name=name, ref=path)
        return None

    def planned_vm(self, name: str) -> Vm | None:
        """The config path follows from the name."""
        return Vm(name=name, ref=self.config_path(name))

    def define(self, spec: VmSpec) -> Vm:
        """Write (or rewrite) the VM's xl config atomically."""
        if "/" in spec.name:
            # xl's monitoring daemon logs to /var/log/xen/xl-<name>.log: a '/' makes it fail.
            raise UsageError(f"xl cannot run a VM whose name contains '/': {spec.name!r}")
        path = self.config_path(spec.name)
        self.host.run(
            [
                "sh",
                "-c",
                'mkdir -p "$2" "$3" && cat > "$1.part" && mv -f "$1.part" "$1"',
                "sh",
                path,
                f"{self.remote_dir}/vms",
                self.state_dir,
            ],
            input=xl_config(spec, self._cpuid(spec)).encode(),
            idempotent=True,
        )
        return Vm(name=spec.name, ref=path)

    def _cpuid(self, spec: VmSpec) -> str:
        """The cpuid policy the VM needs on this host: only the PV shim ever needs one."""
        if spec.mode != "pv_in_pvh":
            return ""
        if self._shim_cpuid is None:
            cpuinfo = self.host.run(["cat", "/proc/cpuinfo"], idempotent=True).stdout
            self._shim_cpuid = xl_writer.shim_cpuid(cpuinfo)
        return self._shim_cpuid

    def undefine(self, vm: Vm) -> None:
        """Remove the config and any save image."""
        self.host.run(self._forget(vm), idempotent=True)

    def domains(self) -> list[dict[str, Any]]:
        """`xl list -l`: every domain with its full config (names survive any characters)."""
        out = self._xl("list", "-l", timeout=60)
        if not out.strip():
            return []
        data = json.loads(out)
        return data if isinstance(data, list) else [data]

    def domid(self, vm: Vm) -> int | None:
        """The domain running under the VM's name (xenstore when available: no process to start)."""
        if self.xenstore is not None:
            found = self.domid_lookup(self.xenstore(), vm.name)
            return found[0] if found else None
        for dom in self.domains():
            if dom.get("config", {}).get("c_info", {}).get("name") == vm.name:
                return int(dom["domid"])
        return None

    def _require_domid(self, vm: Vm) -> str:
        domid = self.domid(vm)
        if domid is None:
            raise ToolstackError("VM_NOT_RUNNING", f"{vm.name!r} has no domain")
        return str(domid)

    def _list_row(self, *args: str) -> list[str]:
        """The domain's row of `xl list ARGS`, split. Names may hold spaces and newlines:
        callers count columns from the right."""
        return self._xl("list", *args, timeout=60).strip().splitlines()[-1].split()

    def domain_state(self, domid: int) -> tuple[str, int | None]:
        """(state letters, shutdown reason code) from `xl list -v`."""
        # ... State Time(s) UUID Reason-Code Security-Label
        row = self._list_row("-v", str(domid))
        state, reason = row[-5], row[-2]
        return state, int(reason) if reason.isdigit() else None

    def set_memory_target(self, vm: Vm, mib: int) -> None:
        """xl mem-set: libxl writes memory/target (and lowers maxmem to it plus 1 MiB)."""
        self._xl("mem-set", self._require_domid(vm), f"{mib}m", timeout=60)

    def memory_kib(self, vm: Vm) -> int:
        """`xl list -l`'s pages are the config; the domain's own count is `xl list`'s Mem
        column (MiB of its pages)."""
        # ... Mem VCPUs State Time(s)
        return int(self._list_row(self._require_domid(vm))[-4]) * 1024

    def wait_stopped(self, vm: Vm, domid: int, timeout: float) -> Stopped:
        """On @releaseDomain until the preserved domain is shut down or crashed: its reason
        code is the guest's SCHEDOP_shutdown reason ('c' must go with reason crash)."""
        if self.xenstore is None:
            raise ToolstackError("NO_XENSTORE", "xl: waiting for a domain needs xenstore")

        def check() -> Stopped | None:
            if self.domid(vm) != domid:
                return Stopped(frozenset(), "destroyed")
            state, code = self.domain_state(domid)
            if "c" not in state and "s" not in state:
                return None
            crashed = "c" in state
            reason = SHUTDOWN_REASONS.get(code) if code is not None else None
            fits = reason is not None and crashed == (reason == "crash")
            seen = f"{'crashed' if crashed else 'shutdown'}, reason {code}"
            return Stopped(frozenset({reason}) if fits and reason else frozenset(), seen)

        return self.xenstore().wait_for(
            ["@releaseDomain"], check, timeout, f"{vm.name} did not stop"
        )

    def power_state(self, vm: Vm) -> str:
        """Map xl's state letters to XAPI-like words."""
        for _ in range(3):
            try:
                return self._power_state(vm)
            except ToolstackError as exc:
                if exc.code != "NO_SUCH_DOMAIN":
                    raise
                # The domain went away between finding it and asking xl about it: look again.
        return self._power_state(vm)

    def _power_state(self, vm: Vm) -> str:
        domid = self.domid(vm)
        if domid is None:
            saved = (
                self.host.run(
                    ["test", "-f", self.save_path(vm)], check=False, idempotent=True
                ).returncode
                == 0
            )
            return "suspended" if saved else "halted"
        state, _ = self.domain_state(domid)
        if "c" in state:
            return "crashed"
        if "s" in state:
            return "shutdown"
        if "p" in state:
            return "paused"
        return "running"

    def start(self, vm: Vm, paused: bool = False) -> None:
        """xl create (returns once the domain runs, or is built with -p); no half-started
        domain stays behind."""
        try:
            self._xl("create", *(["-p"] if paused else []), vm.ref)
        except ToolstackError:
            domid = self.domid(vm)
            if domid is not None:
                self.host.run(["xl", "destroy", str(domid)], check=False)
            raise

    def clean_shutdown(self, vm: Vm) -> None:
        """xl shutdown -w: libxl fails after 60 s without the guest's acknowledgement."""
        self._xl("shutdown", "-w", self._require_domid(vm), timeout=ACK_WAIT + SLOW)

    def hard_shutdown(self, vm: Vm) -> None:
        """xl destroy; a suspended VM (no domain) loses its save image and is halted, as XAPI's
        hard_shutdown of a Suspended VM drops its suspend image."""
        domid = self.domid(vm)
        if domid is not None:
            self._xl("destroy", str(domid))
        else:
            self.host.run(["rm", "-f", self.save_path(vm)], idempotent=True)

    def clean_reboot(self, vm: Vm) -> None:
        """xl reboot -w, then wait until the VM runs in its new domain."""
        old = self._require_domid(vm)
        self._xl("reboot", "-w", old, timeout=ACK_WAIT + SLOW)
        if self.xenstore is None:
            return
        self.wait_new_domid(vm, int(old), SLOW)

    def wait_new_domid(self, vm: Vm, old_domid: int, timeout: float) -> int:
        """On xenstore's @introduceDomain/@releaseDomain: xl names the new domain at once."""
        if self.xenstore is None:
            return super().wait_new_domid(vm, old_domid, timeout)
        xs = self.xenstore()

        def moved() -> int | None:
            found = find_domids_by_name(xs, vm.name)
            return found[0] if found and found[0] != old_domid else None

        return xs.wait_for(
            ["@introduceDomain", "@releaseDomain"],
            moved,
            timeout,
            f"{vm.name!r} did not come back (still domain {old_domid})",
        )

    def suspend(self, vm: Vm) -> None:
        """xl save into the state directory (the domain is gone afterwards)."""
        self.host.run(["mkdir", "-p", self.state_dir], idempotent=True)
        self._xl("save", self._require_domid(vm), self.save_path(vm), timeout=ACK_WAIT + SLOW)

    def checkpoint(self, vm: Vm) -> None:
        """xl save -c: the guest sees a cancelled suspend and carries on."""
        self.host.run(["mkdir", "-p", self.state_dir], idempotent=True)
        self._xl("save", "-c", self._require_domid(vm), self.save_path(vm), timeout=ACK_WAIT + SLOW)
        self.host.run(["rm", "-f", self.save_path(vm)], idempotent=True)

    def resume(self, vm: Vm, paused: bool = False) -> None:
        """xl restore (-p: paused), then drop the image."""
        self._xl("restore", *(["-p"] if paused else []), self.save_path(vm))
        self.host.run(["rm", "-f", self.save_path(vm)], idempotent=True)

    def unpause(self, vm: Vm) -> None:
        """xl unpause."""
        self._xl("unpause", self._require_domid(vm))

    def live_migration_blocker(self, mode: str = "pv") -> str | None:
        """Why live migration cannot work here, or None: it needs log-dirty mode, which a PV
        guest gets only from shadow paging, a PVH guest also from hardware-assisted paging."""
        usable = {"shadow"} if mode == "pv" else {"shadow", "hap"}
        for line in self._xl("info", timeout=60).splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "virt_caps" and not usable & set(value.split()):
                return (
                    f"this Xen has no {' or '.join(sorted(usable))} paging "
                    f"(virt_caps:{value.rstrip()}), {mode.upper()} live migration needs it"
                )
        return None

    def migrate(self, vm: Vm, destination: str | None = None) -> None:
        """xl migrate; to this host with `-s ""`, which runs the "host" argument as the receiver.

        To another host, xl's own transport (ssh from this dom0 to the destination): the VM's
        config and kernel go there first over the same ssh, since a VM lives with its config
        (xl restarts it from there on reboot), and the config leaves this host once it moved.
        """
        domid = self._require_domid(vm)
        if destination is None:
            self._xl("migrate", "-s", "", domid, "xl migrate-receive", timeout=SLOW * 2)
            return
        copied = self._copy_vm_to(vm, destination)
        try:
            self._xl("migrate", domid, destination, timeout=SLOW * 2)
        except ToolstackError:
            self._dom0_ssh(destination, shell_command(["rm", "-f", "--", *copied]), check=False)
            raise
        self.host.run(["rm", "-f", "--", vm.ref], idempotent=True)

    def _dom0_ssh(
        self, destination: str, command: str, stdin_path: str = "", check: bool = True
    ) -> None:
        ssh = shell_command(["ssh", "-o", "BatchMode=yes", "--", destination, command])
        script = f"{ssh} < {shell_command([stdin_path])}" if stdin_path else f"{ssh} < /dev/null"
        try:
            self.host.run(["sh", "-c", script], timeout=SLOW)
        except RemoteCommandError as exc:
            if check:
                detail = (exc.stderr or "").strip().splitlines()[-1:] or ["no error text"]
                raise ToolstackError(
                    "MIGRATION_FAILED",
                    f"this dom0 cannot reach {destination} over its own ssh, which xl migrate "
                    f"uses: {detail[0]}",
                ) from None

    def _copy_vm_to(self, vm: Vm, destination: str) -> list[str]:
        """Copy the VM's config and kernel to the same paths on destination; returns them."""
        config = self.host.run(["cat", "--", vm.ref], idempotent=True).stdout
        match = re.search(r'^kernel\s*=\s*"([^"]+)"', config, re.MULTILINE)
        paths = [vm.ref, *([match.group(1)] if match else [])]
        for path in paths:
            parent = path.rsplit("/", 1)[0] or "/"
            receive = (
                f"mkdir -p -- {shell_command([parent])} && "
                f"cat > {shell_command([path + '.part'])} && "
                f"mv -f -- {shell_command([path + '.part'])} {shell_command([path])}"
            )
            self._dom0_ssh(destination, receive, stdin_path=path)
        return paths

    def destroy(self, vm: Vm) -> None:
        """Destroy the domain (whatever its state) and drop the files, in one round trip."""
        domid = self.domid(vm)
        commands = [["xl", "destroy", str(domid)]] if domid is not None else []
        script = " ; ".join(map(shell_command, [*commands, self._forget(vm)]))
        self.host.run(["sh", "-c", script], idempotent=True)

    def _forget(self, vm: Vm) -> list[str]:
        return ["rm", "-f", vm.ref, self.save_path(vm)]

    def cleanup_commands(self, vm: Vm) -> list[list[str]]:
        """Destroy every domain that may carry the VM (also half-migrated ones), drop its files."""
        commands = [
            ["xl", "destroy", "--", name]
            for name in (vm.name, f"{vm.name}--incoming", f"{vm.name}--migratedaway")
        ]
        return [*commands, self._forget(vm)]
