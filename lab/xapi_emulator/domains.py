"""Real domains through xl (libxl): the emulator's stand-in for xenopsd's xenctrl/libxc calls.

Every domain is created with `xl create -p -e` and on_poweroff/on_reboot/on_crash "preserve":
xl neither monitors nor acts on the domain, so the emulator alone decides what a guest's
shutdown leads to, as xenopsd does (ocaml/xenopsd/lib/xenops_server.ml, VM_check_state).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The client's writer: the lab copies that one file into dom0 beside this package.
from xen_test_vm.xl_writer import XlStringError, shim_cpuid, shim_mib, xl_config_text

XL = "xl"
STATE_DIR = "/var/lib/xapi-emulator"
SLOW = 600.0


class DomainError(Exception):
    """xl failed; the message quotes libxl's error lines."""


@dataclass(frozen=True)
class DomainConfig:
    """What xenopsd's VM.build would be given, in xl's terms."""

    uuid: str
    domain_type: str  # pv | pvh | pv_in_pvh
    kernel: str
    cmdline: str
    ramdisk: str
    memory_mib: int
    maxmem_mib: int
    vcpus: int
    max_vcpus: int

    @property
    def xl_name(self) -> str:
        # XAPI allows any name label, xl only unique ones without '/': xl sees the uuid and
        # the emulator writes the name label into xenstore afterwards, as xenopsd does.
        return f"xapi-{self.uuid}"

    def render(self) -> str:
        # xenopsd boots pv_in_pvh as a PVH domain whose kernel is the PV shim and whose module
        # is the guest's kernel (ocaml/xenopsd/xc/xenops_server_xen.ml ~2480, pv_shim = true;
        # the shim from ocaml/xenopsd/lib/resources.ml pvinpvh_xen): libxl's pvshim = 1.
        shim = self.domain_type == "pv_in_pvh"
        extra = shim_mib(self.maxmem_mib) if shim else 0  # memory.ml: on top, from static_max
        settings: dict[str, str | int] = {
            "name": self.xl_name,
            "uuid": self.uuid,
            "type": "pvh" if shim else self.domain_type,
            "kernel": self.kernel,
            "cmdline": self.cmdline,
            "memory": self.memory_mib + extra,
            "maxmem": self.maxmem_mib + extra,
            "vcpus": self.vcpus,
            "maxvcpus": self.max_vcpus,
            "on_poweroff": "preserve",
            "on_reboot": "preserve",
            "on_crash": "preserve",
        }
        if self.ramdisk:
            settings["ramdisk"] = self.ramdisk
        if shim:
            settings["pvshim"] = 1
            cpuid = shim_cpuid(Path("/proc/cpuinfo").read_text())
            if cpuid:  # the lab's emulated CPU (xl_writer.py says why); no real host needs it
                settings["cpuid"] = cpuid
        try:
            return xl_config_text(settings)
        except XlStringError as exc:
            raise DomainError(str(exc)) from None


def _xl(*args: str, timeout: float = SLOW) -> str:
    try:
        proc = subprocess.run([XL, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DomainError(f"xl {args[0]} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines[-2:]
        raise DomainError(f"xl {args[0]} failed (exit {proc.returncode}): {' | '.join(errors)}")
    return proc.stdout


def _write_config(config: DomainConfig) -> str:
    os.makedirs(STATE_DIR, exist_ok=True)
    path = f"{STATE_DIR}/{config.uuid}.cfg"
    with open(path, "w") as f:
        f.write(config.render())
    return path


def create(config: DomainConfig) -> None:
    """Build the domain paused (`xl create -p -e`), named config.xl_name."""
    _xl("create", "-p", "-e", _write_config(config))


def unpause(domid: int) -> None:
    _xl("unpause", str(domid), timeout=60)


def pause(domid: int) -> None:
    _xl("pause", str(domid), timeout=60)


def destroy(domid: int) -> None:
    """xl destroy; a domain that is already gone is not an error."""
    try:
        _xl("destroy", str(domid), timeout=120)
    except DomainError:
        if state(domid) is not None:
            raise


def save(domid: int, image: str) -> None:
    """xl save (the domain is destroyed afterwards)."""
    _xl("save", str(domid), image)


def restore(config: DomainConfig, image: str) -> None:
    """xl restore -p -e with the VM's config (the image's own one carries the name label the
    emulator wrote into xenstore, so the domain is named config.xl_name again)."""
    _xl("restore", "-p", "-e", _write_config(config), image)


def migrate(config: DomainConfig, domid: int, host: str) -> None:
    """`xl migrate` to another dom0 (ssh over the lab's link): sent with the VM's config (-C,
    so the domain is named config.xl_name there too), left paused there (-p) for the receiving
    emulator, no xl left waiting for it (-e). The domain here is gone afterwards."""
    _xl("migrate", "-C", _write_config(config), "-e", "-p", str(domid), host)


@dataclass(frozen=True)
class DomainState:
    """What `xl list -v` says about one domain."""

    domid: int
    flags: str  # r b p s c d
    reason: int | None  # SHUTDOWN_* when s or c

    @property
    def shut_down(self) -> bool:
        return "s" in self.flags or "c" in self.flags


def states() -> dict[int, DomainState]:
    """Every domain's state letters and shutdown reason code."""
    out = _xl("list", "-v", timeout=60)
    found = {}
    for line in out.splitlines()[1:]:
        row = line.split()
        if len(row) < 9:
            continue
        # Name ID Mem VCPUs State Time(s) UUID Reason-Code Security-Label (names have no spaces)
        domid = int(row[-8])
        reason = row[-2]
        found[domid] = DomainState(domid, row[-5], int(reason) if reason.isdigit() else None)
    return found


def state(domid: int) -> DomainState | None:
    """One domain's state, None when it does not exist."""
    return states().get(domid)
