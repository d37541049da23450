"""Copy the kernel where the toolstack boots kernels from, and register a VM for it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .errors import SSHError, UsageError
from .kernel_source import check_kernel
from .reaper import Reaper
from .remote import Progress
from .session import Session
from .timeouts import Timeouts
from .toolstack import KERNEL_NAME, MIN_MEMORY_MIB, Vm, VmSpec, default_mode, validate_vm_name


def upload_kernel(
    session: Session, kernel: Path, progress: Progress | None = None, name: str = KERNEL_NAME
) -> str:
    """Copy the kernel into the toolstack's kernel directory; returns the remote path."""
    check_kernel(kernel)
    directory = session.toolstack.kernel_dir()
    remote = f"{directory}/{name}"
    session.host.run(["mkdir", "-p", directory], idempotent=True)
    session.host.copy_in(kernel, remote, progress)
    return remote


def upload_run_kernel(
    session: Session, reaper: Reaper, kernel: Path, progress: Progress | None, run: str
) -> str:
    """Upload a kernel of the run's own (removed by the reaper when the run ends): a run must
    not replace the one `install` put there. On failure the reaper is closed too."""
    kernel_name = f"test-vm.{run}-{reaper.run_id}.xen.gz"
    try:
        directory = session.toolstack.kernel_dir()
        reaper.register("kernel", [["rm", "-f", f"{directory}/{kernel_name}"]])
        return upload_kernel(session, kernel, progress, kernel_name)
    except BaseException:
        with contextlib.suppress(SSHError, OSError):
            reaper.close()
        raise


def install(
    session: Session,
    kernel: Path,
    name: str,
    *,
    memory_mib: int = 32,
    cmdline: str = "",
    start: bool = False,
    mode: str | None = None,
    progress: Progress | None = None,
    timeouts: Timeouts | None = None,
) -> dict[str, Any]:
    """Upload, register (re-running updates the same VM), optionally boot until `ready`."""
    validate_vm_name(name)
    if memory_mib < MIN_MEMORY_MIB:
        raise UsageError(f"memory must be at least {MIN_MEMORY_MIB} MiB")
    timeouts = timeouts or Timeouts()
    spec_mode = mode or default_mode(session.kind)

    def register() -> tuple[Vm, dict[str, Any]]:
        remote = upload_kernel(session, kernel, progress)
        vm = session.toolstack.define(
            VmSpec(name=name, kernel=remote, memory_mib=memory_mib, cmdline=cmdline, mode=spec_mode)
        )
        return vm, {
            "name": vm.name,
            "ref": vm.ref,
            "uuid": vm.uuid,
            "kernel": remote,
            "toolstack": session.kind,
            "mode": spec_mode,
            "host": session.host.name,
            "domid": session.toolstack.domid(vm),
        }

    vm, result = timeouts.step(f"install of {name!r}", register)
    if start and result["domid"] is None:
        timeouts.toolstack(f"start of {vm.name!r}", lambda: session.toolstack.start(vm))
        guest = timeouts.step(f"finding the domain of {vm.name!r}", lambda: session.guest(vm))
        guest.wait_state("ready", timeouts.guest())
        result["domid"] = guest.domid
    return result
