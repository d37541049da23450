"""`invoke lab`: boot the lab in the foreground or detached, show or stop a detached one."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from xen_test_vm.errors import report_error

from . import qemu
from .errors import LabError
from .hypervisor import DEFAULT_HYPERVISOR, HYPERVISORS
from .lab import SSH_ALIAS, LabHost, boot, close_ssh
from .paths import state_dir

STATE_FILE = "lab.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_state() -> dict[str, object] | None:
    path = state_dir() / STATE_FILE
    if not path.exists():
        return None
    state: dict[str, object] = json.loads(path.read_text())
    pid = state.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        shutil.rmtree(state_dir(), ignore_errors=True)
        return None
    return state


def attach() -> LabHost:
    """A host handle on the detached lab started by `invoke lab --detach`."""
    state = _read_state()
    if state is None:
        raise LabError("no detached lab is running: start one with `invoke lab --detach`")
    return LabHost(
        ssh_config=Path(str(state["ssh_config"])),
        port=int(str(state["port"])),
        run_dir=state_dir(),
        accel=str(state["accel"]),
        qemu_pid=int(str(state["pid"])),
        xen=dict(state.get("xen") or {}),  # type: ignore[call-overload]
    )


def describe_xen(xen: dict[str, object]) -> str:
    """One line on the booted hypervisor, naming mixed Debian versions."""
    if not xen:
        return "Xen: unknown"
    line = f"Xen {xen.get('xen_version')} ({xen.get('hypervisor')} hypervisor"
    line += ", shadow paging)" if xen.get("hypervisor") == "shadow" else ", no shadow paging)"
    if xen.get("mixed_versions"):
        line += f" with Debian's Xen {xen.get('tools_version')} tools (versions mixed)"
    return line


def _instructions(host: LabHost) -> str:
    return (
        f"lab ready in {host.ready_seconds:.1f} s ({host.accel}); dom0 at 127.0.0.1:{host.port}\n"
        f"  {describe_xen(host.xen)}\n"
        f"  ssh -F {host.ssh_config} {SSH_ALIAS}\n"
        f"  xen-test-vm --ssh-config {host.ssh_config} status --host {SSH_ALIAS}"
    )


def _stop() -> int:
    state = _read_state()
    if state is None:
        print("no detached lab is running", file=sys.stderr)
        return 1
    pid = int(str(state["pid"]))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state_dir(), ignore_errors=True)
    print(f"stopped the lab (QEMU pid {pid})")
    return 0


def _status() -> int:
    state = _read_state()
    if state is None:
        print("no detached lab is running")
        return 1
    print(f"lab running: QEMU pid {state['pid']}, 127.0.0.1:{state['port']}")
    print(f"  ssh -F {state['ssh_config']} {SSH_ALIAS}")
    return 0


def _detach(port: int | None, accel: str, memory_mib: int, hypervisor: str) -> int:
    existing = _read_state()
    if existing is not None:
        raise LabError(
            f"a lab is already running (QEMU pid {existing['pid']}): `invoke lab --stop`"
        )
    run_dir = state_dir()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    process, host = boot(
        run_dir,
        port=port,
        accel=accel,
        memory_mib=memory_mib,
        detached=True,
        hypervisor=hypervisor,
    )
    close_ssh(host)
    state = {
        "pid": process.pid,
        "port": host.port,
        "accel": host.accel,
        "ssh_config": str(host.ssh_config),
        "xen": host.xen,
    }
    (run_dir / STATE_FILE).write_text(json.dumps(state))
    print(_instructions(host))
    print("stop it with: invoke lab --stop")
    return 0


def _foreground(port: int | None, accel: str, memory_mib: int, hypervisor: str) -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="xen-lab-") as tmp:
        process, host = boot(
            Path(tmp), port=port, accel=accel, memory_mib=memory_mib, hypervisor=hypervisor
        )
        try:
            print(_instructions(host))
            print("Ctrl-C stops the lab")
            process.process.wait()
            print("QEMU exited", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            close_ssh(host)
            process.stop()


def lab_command(
    detach: bool = False,
    stop: bool = False,
    status: bool = False,
    port: int | None = None,
    accel: str = "auto",
    memory_mib: int = qemu.GUEST_RAM_MIB,
    hypervisor: str = DEFAULT_HYPERVISOR,
) -> int:
    """Run the lab command; errors become one line on stderr and exit status 1."""
    try:
        if stop:
            return _stop()
        if status:
            return _status()
        if detach:
            return _detach(port, accel, memory_mib, hypervisor)
        return _foreground(port, accel, memory_mib, hypervisor)
    except LabError as exc:
        report_error("lab", str(exc))
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xen-test-lab", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--detach", action="store_true", help="boot in the background and return")
    group.add_argument("--stop", action="store_true", help="stop the detached lab")
    group.add_argument("--status", action="store_true", help="show the detached lab")
    parser.add_argument("--port", type=int, help="SSH port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
    parser.add_argument("--memory", type=int, default=qemu.GUEST_RAM_MIB, help="QEMU RAM in MiB")
    parser.add_argument(
        "--hypervisor",
        default=DEFAULT_HYPERVISOR,
        choices=HYPERVISORS,
        help="shadow: Debian's xen source built with shadow paging (live migration); "
        "debian: the binary package's hypervisor",
    )
    args = parser.parse_args(argv)
    return lab_command(
        args.detach, args.stop, args.status, args.port, args.accel, args.memory, args.hypervisor
    )


if __name__ == "__main__":
    sys.exit(main())
