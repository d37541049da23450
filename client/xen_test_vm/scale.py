"""The load generator: start many test VMs at a chosen concurrency, wait until each kernel is
ready, shut them all down cleanly, and report latencies; no VM stays behind, whatever happens."""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ClientError, SSHError
from .guest import Guest
from .install import upload_run_kernel
from .reaper import Reaper
from .remote import Host, Progress
from .session import Session
from .timeouts import GUEST_TIMEOUT
from .toolstack import MIN_MEMORY_MIB, Vm, VmSpec, default_mode
from .xenstore import Xenstore
from .xl import XlToolstack

# The smallest memory both boot modes run in with room to spare (the bench's min_memory_mib:
# PV 4, PVH 1): what lets hundreds of guests fit on a small host.
SCALE_MEMORY_MIB = MIN_MEMORY_MIB
# Idle guests: without it each prints a console line a second, hundreds of them keep
# xenconsoled busy, and that is not what a toolstack scale test measures.
SCALE_CMDLINE = "heartbeat=0"
MAX_COUNT = 10000
# How long workers still busy with a toolstack call get after an interrupt before the sweep.
STOP_GRACE = 30.0
PHASES = ("start", "ready", "shutdown")
T = TypeVar("T")

# dom0's memory, xenstored's resident size and Xen's free memory, in one round trip. /proc
# rather than procps options: dom0s range from busybox (the lab) to XenServer's CentOS.
MEMORY_SCRIPT = r"""
awk '/^MemTotal:/ {print "dom0_total_kib=" $2} /^MemAvailable:/ {print "dom0_available_kib=" $2}' \
  /proc/meminfo
rss=0
for pid in $(pidof xenstored oxenstored 2>/dev/null); do
  kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  rss=$((rss + ${kib:-0}))
done
echo "xenstored_rss_kib=$rss"
free=$(xl info 2>/dev/null | awk -F: '$1 ~ /^free_memory/ {gsub(/ /, "", $2); print $2}')
echo "xen_free_mib=$free"
"""


def host_memory(host: Host) -> dict[str, int | None]:
    """dom0 total/available (KiB), xenstored's resident size (KiB), Xen's free memory (MiB)."""
    out = host.run(["sh", "-c", MEMORY_SCRIPT], check=False, idempotent=True).stdout
    values: dict[str, int | None] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = int(value) if value.strip().isdigit() else None
    return values


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (of a non-empty list)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency_summary(milliseconds: list[float]) -> dict[str, float | int | None]:
    """count, p50, p95, p99 and max in ms (None without samples)."""
    if not milliseconds:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "count": len(milliseconds),
        "p50": round(percentile(milliseconds, 0.50), 1),
        "p95": round(percentile(milliseconds, 0.95), 1),
        "p99": round(percentile(milliseconds, 0.99), 1),
        "max": round(max(milliseconds), 1),
    }


@dataclass
class VmRun:
    """One generated VM: its timings (ms) and the first thing that went wrong."""

    name: str
    attempted: bool = False  # a worker took it up: something of it may exist on the host
    gone: bool = False  # shut down (or destroyed) and forgotten by the toolstack and the reaper
    vm: Vm | None = None
    start_ms: float | None = None  # the toolstack's start call
    ready_ms: float | None = None  # from the start call until data/test-vm/state is ready
    shutdown_ms: float | None = None  # the toolstack's clean shutdown, request to domain gone
    failed_phase: str = ""
    error: str = ""

    def fail(self, phase: str, exc: BaseException) -> None:
        """Keep the first failure."""
        if not self.failed_phase:
            self.failed_phase = phase
            self.error = " ".join(str(exc).split()) or type(exc).__name__


class DomainIndex:
    """Name -> domids for a host with hundreds of domains: each lookup lists /local/domain
    once and reads only the names of domains it has not seen (find_domids_by_name reads
    every name, which makes a run quadratic). Sound while names do not change, as for the
    generator's VMs, which never migrate or get renamed."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    def domids(self, xs: Xenstore, name: str) -> list[int]:
        """Domain ids named `name`."""
        with self._lock:
            live = {int(c) for c in xs.list("/local/domain") if c.isdigit() and c != "0"}
            for domid in set(self._names) - live:
                del self._names[domid]
            for domid in sorted(live - set(self._names)):
                seen = xs.read(f"/local/domain/{domid}/name")
                if seen is not None:  # libxl writes the name with the directory; else: next time
                    self._names[domid] = seen
            return sorted(d for d, seen in self._names.items() if seen == name)


def in_parallel(
    items: Iterable[T], work: Callable[[T], None], concurrency: int, stop: threading.Event
) -> None:
    """Run work(item) on `concurrency` daemon threads until the items run out or stop is set.

    The caller's thread only waits, in short joins, so Ctrl-C reaches it at once; then the
    workers get STOP_GRACE seconds to return from the toolstack call they are in, so that the
    sweep afterwards sees every VM they created.
    """
    pending: queue.Queue[T] = queue.Queue()
    for item in items:
        pending.put(item)

    def worker() -> None:
        while not stop.is_set():
            try:
                item = pending.get_nowait()
            except queue.Empty:
                return
            work(item)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, concurrency))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:
        stop.set()
        deadline = time.monotonic() + STOP_GRACE
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        raise


@dataclass
class ScaleRun:
    """What the generator created and measured."""

    session: Session
    reaper: Reaper
    kernel: str
    concurrency: int
    memory_mib: int
    mode: str
    cmdline: str = SCALE_CMDLINE
    ready_timeout: float = GUEST_TIMEOUT
    vms: list[VmRun] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    memory: dict[str, dict[str, int | None]] = field(default_factory=dict)
    left_behind: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[str, int, int], None] | None = None
    _done: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _advance(self, phase: str, total: int) -> None:
        with self._lock:
            self._done[phase] = self._done.get(phase, 0) + 1
            done = self._done[phase]
        if self.progress is not None:
            self.progress(phase, done, total)

    def boot(self, run: VmRun) -> None:
        """Register, start and wait for `ready`; the reaper knows the VM before it starts."""
        ts = self.session.toolstack
        spec = VmSpec(
            name=run.name,
            kernel=self.kernel,
            memory_mib=self.memory_mib,
            cmdline=self.cmdline,
            on_poweroff="destroy",
            on_crash="destroy",
            other_config={"xen-test-vm": self.reaper.run_id},
            mode=self.mode,
        )
        phase = "start"
        run.attempted = True
        try:
            run.vm = ts.define_guarded(
                spec, lambda commands: self.reaper.register(run.name, commands)
            )
            if self.stop.is_set():
                return
            started = time.monotonic()
            ts.start(run.vm)
            run.start_ms = (time.monotonic() - started) * 1000
            phase = "ready"
            domid = ts.local_domid(run.vm)
            if domid is None:
                raise ClientError(f"{run.name} has no domain after its start")
            Guest(self.session.xs, domid).wait_state("ready", self.ready_timeout)
            run.ready_ms = (time.monotonic() - started) * 1000
        except ClientError as exc:
            run.fail(phase, exc)
        finally:
            self._advance("ready", len(self.vms))

    def shut_down(self, run: VmRun) -> None:
        """Clean shutdown of a ready VM, then forget it; any other VM is destroyed."""
        ts = self.session.toolstack
        assert run.vm is not None
        try:
            if run.ready_ms is not None:
                started = time.monotonic()
                ts.clean_shutdown(run.vm)
                run.shutdown_ms = (time.monotonic() - started) * 1000
                ts.undefine(run.vm)
            else:
                ts.destroy(run.vm)
            self.reaper.unregister(run.name)
            run.gone = True
        except ClientError as exc:
            run.fail("shutdown", exc)
        finally:
            self._advance("shutdown", self.defined)

    @property
    def defined(self) -> int:
        """How many VMs got registered (the shutdown phase's total)."""
        return len([r for r in self.vms if r.vm is not None])

    def _remains(self, run: VmRun) -> Vm | None:
        """What is left of the VM on the host: its registration or a domain."""
        ts = self.session.toolstack
        vm = run.vm or ts.find(run.name)
        return vm if vm is not None and ts.exists(vm) else None

    def sweep(self) -> None:
        """Destroy whatever is left of every VM not shut down (a failure or an interrupt)."""

        def destroy(run: VmRun) -> None:
            with contextlib.suppress(ClientError, OSError):
                vm = self._remains(run)
                if vm is not None:
                    self.session.toolstack.destroy(vm)

        unfinished = [r for r in self.vms if r.attempted and not r.gone]
        in_parallel(unfinished, destroy, self.concurrency, threading.Event())

    def check_left_behind(self) -> None:
        """Names of VMs that still exist: registered or with a domain (must be none)."""
        left: list[str] = []

        def check(run: VmRun) -> None:
            try:
                if self._remains(run) is not None:
                    left.append(run.name)
            except (ClientError, OSError):
                left.append(run.name)

        attempted = [r for r in self.vms if r.attempted]
        in_parallel(attempted, check, self.concurrency, threading.Event())
        self.left_behind = sorted(left)


def run_scale(
    session: Session,
    kernel_file: Path,
    count: int,
    *,
    concurrency: int = 4,
    memory_mib: int = SCALE_MEMORY_MIB,
    mode: str | None = None,
    cmdline: str = SCALE_CMDLINE,
    ready_timeout: float = GUEST_TIMEOUT,
    upload_progress: Progress | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScaleRun:
    """Start `count` VMs, `concurrency` at a time, until each is ready; shut them all down.

    Every VM is registered with the host-side reaper before it starts, and destroyed on the
    way out whatever happened (an interrupt included); left_behind lists any that survived.
    """
    reaper = Reaper(session.host)
    remote_kernel = upload_run_kernel(session, reaper, kernel_file, upload_progress, "scale")
    if isinstance(session.toolstack, XlToolstack):
        index = DomainIndex()
        session.toolstack = XlToolstack(
            session.host,
            session.toolstack.remote_dir,
            state_dir=reaper.dir,
            xenstore=session.toolstack.xenstore,
            domid_lookup=index.domids,
        )
    run = ScaleRun(
        session,
        reaper,
        remote_kernel,
        concurrency,
        memory_mib,
        mode or default_mode(session.kind),
        cmdline,
        ready_timeout,
        vms=[VmRun(f"xtvm-{reaper.run_id}-{i:04d}") for i in range(count)],
        progress=progress,
    )
    began = time.monotonic()
    try:
        run.memory["before"] = host_memory(session.host)
        in_parallel(run.vms, run.boot, concurrency, run.stop)
        run.seconds["all_ready"] = time.monotonic() - began
        run.memory["all_ready"] = host_memory(session.host)
        shutting = time.monotonic()
        in_parallel([r for r in run.vms if r.vm is not None], run.shut_down, concurrency, run.stop)
        run.seconds["all_shut_down"] = time.monotonic() - shutting
    finally:
        run.stop.set()
        interrupted = "all_shut_down" not in run.seconds
        with contextlib.suppress(ClientError, OSError):
            run.sweep()
        # Runs the cleanup scripts of anything not destroyed above, and removes the kernel.
        with contextlib.suppress(SSHError, OSError):
            reaper.close()
        if not interrupted:
            run.check_left_behind()
            run.memory["after"] = host_memory(session.host)
            run.seconds["total"] = time.monotonic() - began
    return run


def as_json(run: ScaleRun) -> dict[str, Any]:
    """The machine-readable report."""
    vms = run.vms
    ready = [r for r in vms if r.ready_ms is not None]
    shut = [r for r in vms if r.shutdown_ms is not None]
    all_ready, all_down = run.seconds.get("all_ready"), run.seconds.get("all_shut_down")
    return {
        "host": run.session.host.name,
        "run_id": run.reaper.run_id,  # the VMs were named xtvm-<run_id>-<number>
        "toolstack": run.session.kind,
        "mode": run.mode,
        "count": len(run.vms),
        "concurrency": run.concurrency,
        "memory_mib": run.memory_mib,
        "cmdline": run.cmdline,
        "ready": len(ready),
        "shut_down": len(shut),
        "failed": len([r for r in vms if r.failed_phase]),
        "left_behind": run.left_behind,
        "seconds": {key: round(value, 2) for key, value in run.seconds.items()},
        "throughput_vms_per_s": {
            "ready": round(len(ready) / all_ready, 2) if all_ready else None,
            "shutdown": round(len(shut) / all_down, 2) if all_down else None,
        },
        "latency_ms": {
            "start": latency_summary([r.start_ms for r in vms if r.start_ms is not None]),
            "ready": latency_summary([r.ready_ms for r in ready if r.ready_ms is not None]),
            "shutdown": latency_summary([r.shutdown_ms for r in shut if r.shutdown_ms is not None]),
        },
        "host_memory": run.memory,
        "failures": [
            {"name": r.name, "phase": r.failed_phase, "error": r.error}
            for r in vms
            if r.failed_phase
        ],
    }


def passed(report: dict[str, Any]) -> bool:
    """Every VM got ready and shut down cleanly, and none is left."""
    return (
        report["failed"] == 0
        and not report["left_behind"]
        and report["shut_down"] == report["count"]
    )
