"""Start and stop QEMU running Xen: accelerator choice, port forwarding, readiness."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xen_test_vm.xl_writer import SHIM_CPUID_ON_FAMILY_15

from .errors import LabError

QEMU = "qemu-system-x86_64"
GUEST_RAM_MIB = 1536
DOM0_MIB = 512


# smap=0: dom0 crashes at its first bounced page fault under TCG otherwise (LAB-NOTES).
# pcid=0: with PCID, dom0 processes under TCG read stale mappings now and then (segfaults and
# "corrupted double-linked list" in xl, busybox, sshd; 2 of 45 parallel `xl create`s failed);
# none in the same stress without it.
# spec-ctrl=eager-fpu: with Xen's lazy FPU switching, TCG corrupts a vCPU's SSE state across
# vCPU switches; dom0's heap broke now and then ("corrupted double-linked list", xl's
# monitoring child dying during parallel `xl create`s, xenstored going silent under the client).
def xen_args(dom0_mib: int = DOM0_MIB) -> str:
    """Xen's command line, dom0 given dom0_mib MiB."""
    return (
        f"console=com1 com1=115200,8n1 dom0_mem={dom0_mib}M,max:{dom0_mib}M noreboot smap=0 "
        "pcid=0 spec-ctrl=eager-fpu bootscrub=false loglvl=all guest_loglvl=all"
    )


# The lab's dom0 is a throwaway test host; what it skips at boot under TCG (dmesg times):
# rodata=off: the read-only remap and its W+X page-table walk (0.27 s); cryptomgr.notests: the
# kernel crypto self-tests (crypto_algapi_init 0.27 s); init_on_alloc=0: zeroing every page it
# allocates; mitigations=off: retpolines and buffer clearing in dom0 (Xen keeps its own).
DOM0_ARGS = (
    "console=hvc0 rdinit=/init quiet rodata=off cryptomgr.notests init_on_alloc=0 mitigations=off"
)
READY_MARK = "XEN-LAB-READY"
# Where the boot time goes (bench): the console line that ends each phase, in boot order.
# xen: QEMU start -> Xen hands over to dom0; dom0_kernel: -> dom0's /init runs; dom0_init:
# -> init says ready (READY_MARK). LabHost.ready_seconds adds the first SSH login and xl info.
BOOT_PHASE_MARKS = (
    ("xen_banner", "(XEN) Xen version"),
    ("xen", "about to get started"),
    ("dom0_kernel", "XEN-LAB-INIT"),
    ("dom0_init", READY_MARK),
)
FAILED_MARK = "XEN-LAB-FAILED"
_PR_SET_PDEATHSIG = 1


def require_qemu() -> str:
    path = shutil.which(QEMU)
    if not path:
        raise LabError(f"{QEMU} not found: run scripts/bootstrap (Debian package qemu-system-x86)")
    return path


def require_memory(mib: int) -> None:
    """Refuse to start when the machine cannot hold the lab (QEMU needs its RAM plus ~256 MiB)."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return
    match = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE)
    if match and int(match.group(1)) // 1024 < mib + 256:
        available = int(match.group(1)) // 1024
        raise LabError(
            f"too little memory for the lab: it needs {mib + 256} MiB, {available} MiB are "
            "available; stop other labs or VMs, or give less with --memory"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LabError(
                f"port {port} on 127.0.0.1 is in use: pick another with --port, or leave it out"
            ) from exc


def kvm_usable() -> bool:
    """A quick probe: KVM can only run Xen where the CPU offers VMX/SVM to this machine."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE))


def _escape(value: str) -> str:
    return value.replace(",", ",,")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class QemuProcess:
    """A running QEMU; `stop` always leaves no process behind."""

    process: subprocess.Popen[bytes]
    console_log: Path
    port: int
    accel: str
    started: float = field(default_factory=time.monotonic)
    # Seconds since start at which each BOOT_PHASE_MARKS line was first seen (wait_ready).
    phase_seen: dict[str, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def keep_console(self) -> Path:
        """Copy the console log out of the run directory, which is removed on the way out."""
        from .paths import cache_dir

        kept = cache_dir() / "last-lab-console.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(self.console_text())
        return kept

    def wait_ready(self, timeout: float) -> float:
        """Wait for dom0's init to report ready; returns seconds since QEMU started."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            text = self.console_text()
            now = time.monotonic() - self.started
            for phase, mark in BOOT_PHASE_MARKS:
                if phase not in self.phase_seen and mark in text:
                    self.phase_seen[phase] = round(now, 2)
            if READY_MARK in text:
                return now
            failed = re.search(FAILED_MARK + r": (.*)", text)
            if failed:
                kept = self.keep_console()
                raise LabError(f"dom0 failed to start: {failed.group(1).strip()} (see {kept})")
            if self.process.poll() is not None:
                tail = " | ".join(text.strip().splitlines()[-3:]) or "no console output"
                raise LabError(f"QEMU exited with {self.process.returncode} during boot: {tail}")
            time.sleep(0.02)
        kept = self.keep_console()
        raise LabError(f"the lab did not become ready within {timeout:.0f} s (see {kept})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tcg_threads(accel: str) -> str:
    """The -accel value: TCG with one thread for both vCPUs.

    Multi-threaded TCG (QEMU's default for x86 on x86) runs PVH guests into triple faults now
    and then, always right after an instruction Xen intercepts (rdtsc, vmmcall): 8 in ~22,000
    control/testing round trips of one PVH guest here, with tsc_mode native, without the
    callback IRQ and without vGIF alike; Xen itself once died of a double fault on a dom0 stack.
    With thread=single: none in 12,000, at ~1.6x the time per round trip.
    """
    return f"{accel},thread=single" if accel == "tcg" else accel


def guest_cpuid(mode: str, accel: str = "tcg") -> str:
    """The xl cpuid a guest of this boot mode needs on the lab's CPU: TCG's `max` is an AMD
    family 15, where Xen's PV shim cannot boot (xl_writer.SHIM_CPUID_ON_FAMILY_15 says why)."""
    return SHIM_CPUID_ON_FAMILY_15 if mode == "pv_in_pvh" and accel == "tcg" else ""


def start(
    xen: Path,
    dom0_kernel: Path,
    initrd: Path,
    run_dir: Path,
    port: int,
    accel: str,
    memory_mib: int = GUEST_RAM_MIB,
    detached: bool = False,
    extra_args: Sequence[str] = (),
    dom0_mib: int = DOM0_MIB,
) -> QemuProcess:
    """Start QEMU with Xen and dom0; SSH is forwarded from 127.0.0.1:port only. extra_args:
    more devices (the two-host lab's link between its dom0s)."""
    qemu = require_qemu()
    console_log = run_dir / "console.log"
    console_log.unlink(missing_ok=True)
    # -rdtscp: Xen fails to emulate RDTSCP for PVH guests under TCG's SVM (LAB-NOTES.md).
    cpu = "host" if accel == "kvm" else "max,-rdtscp"
    args = [
        qemu, "-nodefaults", "-display", "none", "-no-reboot",
        "-accel", tcg_threads(accel), "-cpu", cpu, "-m", str(memory_mib), "-smp", "2",
        "-serial", f"file:{console_log}", "-monitor", "none",
        "-kernel", str(xen), "-append", xen_args(dom0_mib),
        "-initrd", f"{_escape(str(dom0_kernel))} {DOM0_ARGS},{_escape(str(initrd))}",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-pci,netdev=net0",
        *extra_args,
    ]  # fmt: skip
    stderr_log = (run_dir / "qemu.stderr").open("wb")
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=stderr_log,
        stderr=stderr_log,
        preexec_fn=None if detached else _die_with_parent,
        start_new_session=True,
    )
    stderr_log.close()
    qemu_process = QemuProcess(process, console_log, port, accel)
    # QEMU reports a busy forwarding port at once; give it a moment to say so.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=0.3)
    if process.poll() is not None:
        message = (run_dir / "qemu.stderr").read_text(errors="replace").strip()
        if "host forwarding" in message:
            raise LabError(f"port {port} on 127.0.0.1 is in use: pick another or leave it out")
        raise LabError(f"QEMU failed to start: {message.splitlines()[-1] if message else '?'}")
    return qemu_process
