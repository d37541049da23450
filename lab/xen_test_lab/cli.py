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

from xen_test_vm.errors import ExitCode, report_error

from . import qemu, xapi_lab
from .errors import LabError
from .hypervisor import DEFAULT_HYPERVISOR, HYPERVISORS
from .lab import (
    DEFAULT_XENSTORED,
    SSH_ALIAS,
    XENSTOREDS,
    LabHost,
    boot,
    close_ssh,
    require_xenstored,
    running_lab,
)
from .pair import boot_pair, running_pair
from .paths import state_dir

STATE_FILE = "lab.json"
# The emulated root's password on `invoke lab --xapi` (a throwaway lab's, printed to the user).
XAPI_PASSWORD = "lab-root-password"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A QEMU of ours that exited stays a zombie until reaped: that is not alive either.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
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
        xenstored=str(state.get("xenstored") or DEFAULT_XENSTORED),
        ssh_alias=str(state.get("ssh_alias") or SSH_ALIAS),
        baseline_files=(
            str(state.get("baseline_kernel") or ""),
            str(state.get("baseline_initrd") or ""),
        ),
    )


def describe_xen(xen: dict[str, object]) -> str:
    """One line on the booted hypervisor, naming mixed Debian versions."""
    if not xen:
        return "Xen: unknown"
    line = f"Xen {xen.get('xen_version')} ({xen.get('hypervisor')} hypervisor"
    line += ", shadow paging)" if xen.get("hypervisor") == "shadow" else ", no shadow paging)"
    if xen.get("mixed_versions"):
        line += f" with Debian's Xen {xen.get('tools_version')} tools (versions mixed)"
    if xen.get("xenstored"):
        line += f", {xen.get('xenstored')}"
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
        report_error("lab", "no detached lab is running")
        return ExitCode.FAILED
    peers = state.get("peer_pids")
    pids = (
        [int(str(state["pid"])), *(int(str(p)) for p in peers)]
        if isinstance(peers, list)
        else [int(str(state["pid"]))]
    )
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state_dir(), ignore_errors=True)
    print(f"stopped the lab (QEMU pid {', '.join(map(str, pids))})")
    return 0


def _status() -> int:
    state = _read_state()
    if state is None:
        print("no detached lab is running")
        return 1
    print(f"lab running: QEMU pid {state['pid']}, 127.0.0.1:{state['port']}")
    print(f"  ssh -F {state['ssh_config']} {SSH_ALIAS}")
    return 0


def _pair_instructions(hosts: list[LabHost]) -> str:
    lines = [f"two-host lab ready ({hosts[0].accel}); dom0s linked only through QEMU on 127.0.0.1"]
    lines.append(f"  {describe_xen(hosts[0].xen)}")
    for host in hosts:
        lines.append(
            f"  {host.ssh_alias}: 127.0.0.1:{host.port}, ready in {host.ready_seconds:.1f} s; "
            f"ssh -F {host.ssh_config} {host.ssh_alias}"
        )
    lines.append(f"  in dom0: xl migrate NAME {hosts[1].ssh_alias}")
    return "\n".join(lines)


def _start_xapi(hosts: list[LabHost]) -> str:
    """The XAPI emulator on the lab (a pool of both hosts for two): what to tell the user."""
    for host in hosts:
        xapi_lab.install(host)
    if len(hosts) == 1:
        xapi_lab.start(hosts[0], password=XAPI_PASSWORD)
        pool = f"{hosts[0].ssh_alias} (one host)"
    else:
        xapi_lab.start_pool(hosts[0], hosts[1:], password=XAPI_PASSWORD)
        pool = f"master {hosts[0].ssh_alias}, member {hosts[1].ssh_alias}"
    return (
        f"  XAPI EMULATOR (not XenServer/XCP-ng): {pool}; root's password {XAPI_PASSWORD!r} "
        "(a member's socket needs it: --xapi-password-file)"
    )


def _pair(
    accel: str, memory_mib: int, hypervisor: str, xenstored: str, detach: bool, xapi: bool
) -> int:
    if not detach:
        with running_pair(accel, memory_mib, hypervisor, xenstored) as hosts:
            print(_pair_instructions(list(hosts)))
            if xapi:
                print(_start_xapi(list(hosts)))
            return _until_qemu_exits(list(hosts))
    run_dir = _fresh_state_dir()
    processes, pair = boot_pair(run_dir, accel, memory_mib, True, hypervisor, xenstored)
    try:
        extra = _start_xapi(pair) if xapi else ""
    except BaseException:
        for process in processes:
            process.stop()
        raise
    for host in pair:
        close_ssh(host)
    _write_state(run_dir, pair[0], processes[0].pid, [processes[1].pid])
    print(_pair_instructions(pair))
    if extra:
        print(extra)
    print("stop it with: invoke lab --stop")
    return 0


def _write_state(
    run_dir: Path, host: LabHost, pid: int, peer_pids: list[int] | None = None
) -> None:
    """What attach(), --status and --stop need of a detached lab (host: the first one)."""
    state = {
        "pid": pid,
        "peer_pids": peer_pids or [],
        "port": host.port,
        "accel": host.accel,
        "ssh_config": str(host.ssh_config),
        "ssh_alias": host.ssh_alias,
        "xen": host.xen,
        "xenstored": host.xenstored,
        "baseline_kernel": host.baseline_files[0],
        "baseline_initrd": host.baseline_files[1],
    }
    (run_dir / STATE_FILE).write_text(json.dumps(state))


def _fresh_state_dir() -> Path:
    existing = _read_state()
    if existing is not None:
        raise LabError(
            f"a lab is already running (QEMU pid {existing['pid']}): `invoke lab --stop`"
        )
    run_dir = state_dir()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    return run_dir


def _detach(
    port: int | None, accel: str, memory_mib: int, hypervisor: str, xenstored: str, xapi: bool
) -> int:
    run_dir = _fresh_state_dir()
    process, host = boot(
        run_dir,
        port=port,
        accel=accel,
        memory_mib=memory_mib,
        detached=True,
        hypervisor=hypervisor,
        xenstored=xenstored,
    )
    try:
        extra = _start_xapi([host]) if xapi else ""
    except BaseException:
        process.stop()
        raise
    close_ssh(host)
    _write_state(run_dir, host, process.pid)
    print(_instructions(host))
    if extra:
        print(extra)
    print("stop it with: invoke lab --stop")
    return 0


def _until_qemu_exits(hosts: list[LabHost]) -> int:
    """Wait in the foreground: 0 on Ctrl-C, 1 if a QEMU went away by itself."""
    print("Ctrl-C stops the lab")
    try:
        while all(_alive(host.qemu_pid) for host in hosts):
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    report_error("lab", "QEMU exited")
    return ExitCode.FAILED


def _foreground(
    port: int | None, accel: str, memory_mib: int, hypervisor: str, xenstored: str, xapi: bool
) -> int:
    with running_lab(port, accel, memory_mib, hypervisor, xenstored) as host:
        print(_instructions(host))
        if xapi:
            print(_start_xapi([host]))
        return _until_qemu_exits([host])


def lab_command(
    detach: bool = False,
    stop: bool = False,
    status: bool = False,
    port: int | None = None,
    accel: str = "auto",
    memory_mib: int = qemu.GUEST_RAM_MIB,
    hypervisor: str = DEFAULT_HYPERVISOR,
    xenstored: str = DEFAULT_XENSTORED,
    hosts: int = 1,
    xapi: bool = False,
) -> int:
    """Run the lab command; errors become one line on stderr and exit status 1."""
    try:
        if stop:
            return _stop()
        if status:
            return _status()
        require_xenstored(xenstored)
        if hosts not in (1, 2):
            raise LabError(f"--hosts must be 1 or 2, not {hosts}")
        if hosts == 2:
            if port is not None:
                raise LabError("--port picks the one host's SSH port: leave it out with --hosts 2")
            return _pair(accel, memory_mib, hypervisor, xenstored, detach, xapi)
        if detach:
            return _detach(port, accel, memory_mib, hypervisor, xenstored, xapi)
        return _foreground(port, accel, memory_mib, hypervisor, xenstored, xapi)
    except LabError as exc:
        report_error("lab", str(exc))
        return ExitCode.FAILED
    except KeyboardInterrupt:
        report_error("lab", "interrupted")
        return ExitCode.INTERRUPTED


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
    parser.add_argument(
        "--xenstored",
        default=DEFAULT_XENSTORED,
        choices=XENSTOREDS,
        help="cxenstored (C) or oxenstored (OCaml, as XenServer and XCP-ng run it)",
    )
    parser.add_argument("--hosts", type=int, default=1, help="1, or 2 linked hosts")
    parser.add_argument(
        "--xapi", action="store_true", help="run the XAPI emulator (with --hosts 2: as a pool)"
    )
    args = parser.parse_args(argv)
    return lab_command(
        args.detach,
        args.stop,
        args.status,
        args.port,
        args.accel,
        args.memory,
        args.hypervisor,
        args.xenstored,
        args.hosts,
        args.xapi,
    )


if __name__ == "__main__":
    sys.exit(main())
