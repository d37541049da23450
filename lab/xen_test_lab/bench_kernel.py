"""`invoke bench` section: the test kernel against the Linux baseline guest, on the same lab.

Measured for each guest, in dom0 so SSH latency stays out of the numbers:
- image size (ours: gzipped and uncompressed; Linux: the kernel and initramfs the lab boots);
- `xl create` -> ready: ours = data/test-vm/state is `ready`, Linux = control/feature-poweroff
  is `1` (Linux writes it once its shutdown watch is registered). Timed with /proc/uptime
  (10 ms steps) and including one `xl domid` and one xtv-xs start, which are measured on their
  own and reported as `overhead_seconds`;
- the median time from writing a control/shutdown request to its acknowledgement, timed by
  xtv-xs with CLOCK_MONOTONIC on xenstore watches (no sleeps). Ours answers every request, so
  it gets an unknown value many times. Linux acknowledges only the words it acts on, so its
  repeated sample uses control/sysrq (same xenbus watch/read/acknowledge path, key `h` only
  prints help); both also time one real `poweroff` at the end;
- `xl save` + `xl restore` (ours: until ready again; Linux writes no key on resume, so until
  `xl restore` returns);
- live migration to the same host (`xl migrate` through a pipe; ours until ready again, Linux
  until `xl migrate` returns; needs log-dirty mode: PV only with shadow paging, which the
  bench's hypervisor (built from Debian's source) has, PVH also with hap);
- ours only: the smallest `memory=` (MiB) it boots in;
- the floor: dom0's own xenstore round trip (xtv-xs writes a scratch key and waits for its own
  watch event), median and p95, in the same run; every guest's ack latency is at least one of
  these plus the guest's own round trips to xenstored;
- ours only: guest<->xenstored round trips per request, counted by the kernel itself (a guest
  booted with `xsstats=1` says them on its console after each event);
- issue 9's back-to-back target, in each boot mode: 300 times control/shutdown=s3 then
  control/testing=now/ignore from one dom0 connection, each pair answered ("" in both) within
  200 ms (`pairs`: how many were, median and worst);
- `ack_targets`: ack median <= 1/2 of Linux's (same run), p95 <= 2x our median, and the median
  as a multiple of the floor.

On a second lab running oxenstored (as XenServer and XCP-ng do): the floor and the ack
latencies of ours (each mode) and of Linux again, with their targets (`oxenstored`).

Ours is measured in each boot mode of the one image: PV in `kernel` itself (as before, the
ack targets use it), PVH in `kernel.pvh` (the same keys).
"""

from __future__ import annotations

import gzip
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from xen_test_vm.toolstack import VmSpec
from xen_test_vm.xl import xl_config

from .bench import latency_summary
from .dom0_xs import REPO_ROOT, Dom0Script, install_tool
from .errors import LabError
from .lab import LabHost
from .qemu import guest_cpuid

Report = dict[str, Any]

IMAGE_TARGET_BYTES = 16 * 1024
MEMORY_TARGET_MIB = 4
ACK_ROUNDS = 50
# Interleaved ack comparison: ours (PV) and Linux both running, alternating blocks of rounds, so
# the lab's drift during the run falls on both alike (the sequential figures differed between
# two runs by up to 0.27 in the ratio, Linux's median by 20 ms).
INTERLEAVED_BLOCKS = 5
INTERLEAVED_ROUNDS = 20
FLOOR_ROUNDS = 50
FLOOR_KEY = "/local/domain/0/data/xen-test-vm-bench-floor"
STATS_REQUESTS = 10
# Targets stated in the issue (9): half of Linux's median, a p95 within twice the median.
MEDIAN_VS_LINUX_TARGET = 0.5
P95_VS_MEDIAN_TARGET = 2.0
SAVE_RESTORE_CYCLES = 3
PAIRS = 300
PAIR_TARGET_MS = 200
REMOTE_DIR = "/root/xen-test-vm-bench"
READY_TIMEOUT_MS = 120_000
MEMORY_PROBE_MS = 20_000
REPO_KERNEL = REPO_ROOT / "kernel"
# The boot modes of the one image (pv_in_pvh: the PV kernel in Xen's PV shim).
KERNEL_MODES = ("pv", "pvh", "pv_in_pvh")


def _kernel_config(name: str, kernel: str, memory_mib: int, mode: str, cmdline: str = "") -> str:
    """The client's xl config of a test VM (one vCPU, xl's default actions)."""
    spec = VmSpec(name=name, kernel=kernel, memory_mib=memory_mib, cmdline=cmdline, mode=mode)
    return xl_config(spec, guest_cpuid(mode))


def _timed(host: LabHost, script: str, timeout: float = 300.0) -> tuple[float, str]:
    """Run a dom0 shell script; seconds it took by dom0's clock, and its stdout."""
    wrapped = (
        "t0=$(cut -d' ' -f1 /proc/uptime); "
        f"{{ {script} ; }} > /tmp/bench.out 2>/tmp/bench.err || "
        "{ cat /tmp/bench.err >&2; exit 1; }; "
        "t1=$(cut -d' ' -f1 /proc/uptime); cat /tmp/bench.out; echo \"@elapsed $t0 $t1\""
    )
    out = host.run(wrapped, timeout=timeout).stdout.splitlines()
    _, start, end = out[-1].split()
    return round(float(end) - float(start), 2), "\n".join(out[:-1])


def _hex(text: str) -> str:
    return text.encode().hex()


def _wait_script(
    tool: str, name: str, key: str, value: str, timeout_ms: int = READY_TIMEOUT_MS
) -> str:
    """Shell: wait (on a xenstore watch) until the named guest's key holds value."""
    return (
        f"d=$(xl domid {shlex.quote(name)}) && "
        f'echo "wait /local/domain/$d/{key} {_hex(value)} {timeout_ms}" | {tool} '
        "| grep -q '^ok'"
    )


class _Guest:
    """One benchmarked guest kind: how to configure it and when it counts as ready."""

    def __init__(
        self,
        host: LabHost,
        tool: str,
        name: str,
        config: str,
        ready: tuple[str, str],
        ready_after_restore: bool,
    ):
        self.host, self.tool, self.name = host, tool, name
        self.config_path = f"{REMOTE_DIR}/{name}.cfg"
        self.ready_key, self.ready_value = ready
        self.ready_after_restore = ready_after_restore
        host.run(f"cat > {self.config_path}", input=config)

    def wait_ready(self) -> str:
        return _wait_script(self.tool, self.name, self.ready_key, self.ready_value)

    def create_to_ready(self) -> tuple[float, float]:
        """Seconds from `xl create` to ready, and the measuring overhead included in it."""
        seconds, _ = _timed(self.host, f"xl create -q {self.config_path} && {self.wait_ready()}")
        overhead, _ = _timed(self.host, self.wait_ready())
        return seconds, overhead

    def acktimes(self, key: str, value: str, rounds: int) -> list[int]:
        script = Dom0Script()
        domid = self.domid()
        script.add(
            "ack", f"acktime /local/domain/{domid}/{key} {_hex(value)} {rounds} {READY_TIMEOUT_MS}"
        )
        answer = script.run(self.host)["ack"].split()
        if answer[0] != "acktime" or "timeout" in answer:
            raise LabError(f"{self.name}: {key}={value!r} was not acknowledged: {answer}")
        return [int(us) for us in answer[1:]]

    def domid(self) -> int:
        return int(self.host.run(f"xl domid {shlex.quote(self.name)}").stdout.strip())

    def save_restore(self) -> float:
        """Seconds for `xl save` + `xl restore` until the guest is ready again."""
        path = f"/tmp/{self.name}.save"
        self.host.run(f"rm -f {path}")
        seconds, _ = _timed(
            self.host,
            f"xl save {shlex.quote(self.name)} {path} >/dev/null && "
            f"xl restore {path} >/dev/null && rm -f {path}"
            + (f" && {self.wait_ready()}" if self.ready_after_restore else ""),
        )
        return seconds

    def migrate(self) -> float:
        """Seconds for a live migration to this host until the guest is ready again (Linux:
        until `xl migrate` returns, as for restore: it writes no key on resume)."""
        seconds, _ = _timed(
            self.host,
            f'xl migrate -s "" {shlex.quote(self.name)} "xl migrate-receive" >/dev/null'
            + (f" && {self.wait_ready()}" if self.ready_after_restore else ""),
        )
        return seconds

    def destroy(self) -> None:
        self.host.run(f"xl destroy {shlex.quote(self.name)}", check=False)


def _measure_guest(
    guest: _Guest, ack_key: str, ack_value: str, result: Report, migrate: bool = False
) -> None:
    """Fill `result` as measurements complete, so a late failure keeps the earlier numbers."""
    try:
        created, overhead = guest.create_to_ready()
        result["create_to_ready_seconds"] = created
        result["create_to_ready_overhead_seconds"] = overhead
        result["ack_key"] = ack_key
        result["ack"] = latency_summary(guest.acktimes(ack_key, ack_value, ACK_ROUNDS))
        cycles: list[float] = []
        result["save_restore_seconds"] = cycles
        for _ in range(SAVE_RESTORE_CYCLES):
            cycles.append(guest.save_restore())
        result["save_restore_median_seconds"] = statistics.median(cycles)
        if migrate:
            try:
                result["live_migration_seconds"] = guest.migrate()
            except LabError as exc:
                result["live_migration_seconds"] = None
                result["live_migration_error"] = str(exc).splitlines()[-1:]
        result["poweroff_ack"] = latency_summary(guest.acktimes("control/shutdown", "poweroff", 1))
    except LabError as exc:
        result["error"] = str(exc)
    finally:
        guest.destroy()


def _image_sizes(kernel_image: Path) -> Report:
    packed = kernel_image.stat().st_size
    return {
        "image_gzip_bytes": packed,
        "image_uncompressed_bytes": len(gzip.decompress(kernel_image.read_bytes())),
        "image_target_bytes": IMAGE_TARGET_BYTES,
        "meets_image_target": packed <= IMAGE_TARGET_BYTES,
    }


def _clean_build_seconds() -> float:
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as out:
        start = time.monotonic()
        subprocess.run(
            ["make", "-s", "-C", str(REPO_KERNEL), f"O={out}", "image"],
            check=True,
            capture_output=True,
        )
        return round(time.monotonic() - start, 2)


def _min_memory(host: LabHost, tool: str, kernel: str, mode: str) -> Report:
    """Walk memory= down from 4 MiB (up if 4 fails) to the smallest that reaches ready."""

    def boots(mib: int) -> tuple[bool, str]:
        name = f"bench-mem-{mode}-{mib}"
        host.run(f"cat > {REMOTE_DIR}/{name}.cfg", input=_kernel_config(name, kernel, mib, mode))
        created = host.run(f"xl create -q {REMOTE_DIR}/{name}.cfg", check=False)
        try:
            if created.returncode != 0:
                errors = [line for line in created.stderr.splitlines() if "error" in line]
                return False, (errors or ["xl create failed"])[0].strip()
            # A guest given too little memory inside the PV shim crashes within the shim and
            # never says ready: a probe waits a bounded time (ready takes ~1-2 s here).
            wait = _wait_script(tool, name, "data/test-vm/state", "ready", MEMORY_PROBE_MS)
            ready = host.run(wait, check=False)
            return ready.returncode == 0, "" if ready.returncode == 0 else "never ready"
        finally:
            host.run(f"xl destroy {name}", check=False)

    ok, why = boots(MEMORY_TARGET_MIB)
    smallest, refused = (MEMORY_TARGET_MIB, "") if ok else (0, why)
    step = -1 if ok else 1
    mib = MEMORY_TARGET_MIB + step
    while 1 <= mib <= 64:
        ok, why = boots(mib)
        if step < 0 and not ok:
            refused = f"{mib} MiB: {why}"
            break
        if ok:
            smallest = mib
            if step > 0:
                break
        mib += step
    return {
        "min_memory_mib": smallest or None,
        "min_memory_target_mib": MEMORY_TARGET_MIB,
        "meets_memory_target": 0 < smallest <= MEMORY_TARGET_MIB,
        "below_min_memory": refused,
    }


def _floor(host: LabHost) -> Report:
    """dom0's own xenstore round trip: write a scratch key, wait for its own watch event."""
    script = Dom0Script()
    script.add("floor", f"floor {FLOOR_KEY} {FLOOR_ROUNDS} {READY_TIMEOUT_MS}")
    script.add("rm", f"rm {FLOOR_KEY}")
    answer = script.run(host)["floor"].split()
    if answer[0] != "floor" or len(answer) != FLOOR_ROUNDS + 1:
        raise LabError(f"dom0's own xenstore round trip failed: {answer}")
    return latency_summary([int(us) for us in answer[1:]])


def _round_trips(host: LabHost, tool: str, kernel: str) -> Report:
    """Round trips per control/shutdown request, as the kernel counts them (xsstats=1)."""
    name = "bench-xsstats"
    config = _kernel_config(name, kernel, 4, "pv", cmdline="xsstats=1 heartbeat=0")
    guest = _Guest(host, tool, name, config, ("data/test-vm/state", "ready"), True)
    try:
        guest.create_to_ready()
        guest.acktimes("control/shutdown", "bench-unknown-request", STATS_REQUESTS)
        log = host.console_log(name).splitlines()
    finally:
        guest.destroy()
    lines = [
        line.split()
        for line in log
        if line.startswith("xenstore: control/shutdown event answered after")
    ]
    # "xenstore: control/shutdown event answered after R requests in T round trips (R' in T' ...)"
    samples = [(int(w[5]), int(w[8]), int(w[11].lstrip("(")), int(w[13])) for w in lines]
    if len(samples) < STATS_REQUESTS:
        raise LabError(f"{name}: {len(samples)} xsstats lines for {STATS_REQUESTS} requests")
    last = samples[-1]
    return {
        "requests_until_ack": last[0],
        "round_trips_until_ack": last[1],
        "requests_per_event": last[2],
        "round_trips_per_event": last[3],
        "same_for_every_request": len(set(samples[-STATS_REQUESTS:])) == 1,
        "what": "transaction start, read; the ack write and the commit pipelined (one round "
        "trip); an unknown request writes no status keys",
        # Not measured: Linux's drivers/xen/manage.c (shutdown_handler, sysrq_handler) awaits
        # xenbus_transaction_start, the read, the write and xenbus_transaction_end in turn.
        "linux_round_trips_per_request_by_its_source": 4,
    }


def _pairs(host: LabHost, tool: str, kernel: str, mode: str) -> Report:
    """Back-to-back s3 + control/testing pairs against a heartbeat=0 guest: each within 200 ms?"""
    name = f"bench-pairs-{mode}"
    config = _kernel_config(name, kernel, 16, mode, cmdline="heartbeat=0")
    guest = _Guest(host, tool, name, config, ("data/test-vm/state", "ready"), True)
    try:
        guest.create_to_ready()
        domid = guest.domid()
        home = f"/local/domain/{domid}"
        script = Dom0Script()
        script.write("create", f"{home}/control/testing", "")
        script.chmod("chmod", f"{home}/control/testing", "n0", f"b{domid}")
        script.add("pairs", f"pairs {home} {PAIRS} {PAIR_TARGET_MS}")
        answer = script.run(host, timeout=900)["pairs"].split()
    finally:
        guest.destroy()
    if answer[0] != "pairs" or len(answer) < 5:
        raise LabError(f"{name}: back-to-back pairs failed: {answer}")
    within, over, worst_us, median_us = (int(word) for word in answer[1:5])
    return {
        "pairs": PAIRS,
        "target_ms": PAIR_TARGET_MS,
        "within_target": within,
        "over_target": over,
        "median_ms": round(median_us / 1000, 3),
        "max_ms": round(worst_us / 1000, 3),
        "meets_target": over == 0,
    }


def _targets(report: Report) -> Report:
    """The issue's latency targets, computed from this run's numbers."""
    ours = report.get("kernel", {}).get("ack", {})
    linux = report.get("linux_baseline", {}).get("ack", {})
    floor = report.get("floor", {})
    out: Report = {
        "median_vs_linux_target": MEDIAN_VS_LINUX_TARGET,
        "p95_vs_median_target": P95_VS_MEDIAN_TARGET,
    }
    if "median_ms" in ours and "median_ms" in linux:
        ratio = ours["median_ms"] / linux["median_ms"]
        out["median_vs_linux"] = round(ratio, 3)
        out["meets_median_vs_linux"] = ratio <= MEDIAN_VS_LINUX_TARGET
    if "median_ms" in ours:
        ratio = ours["p95_ms"] / ours["median_ms"]
        out["p95_vs_median"] = round(ratio, 3)
        out["meets_p95_vs_median"] = ratio <= P95_VS_MEDIAN_TARGET
    if "median_ms" in ours and "median_ms" in floor:
        out["median_vs_floor"] = round(ours["median_ms"] / floor["median_ms"], 2)
    if "median_ms" in linux and "median_ms" in floor:
        out["linux_median_vs_floor"] = round(linux["median_ms"] / floor["median_ms"], 2)
    return out


def _install(host: LabHost, kernel_image: Path) -> tuple[str, str]:
    """xtv-xs, the kernel image (and the PV shim) into dom0; their paths there."""
    host.run(f"mkdir -p {REMOTE_DIR}")
    host.install_shim()
    tool = install_tool(host)
    kernel = f"{REMOTE_DIR}/test-vm.xen.gz"
    host.copy_in(kernel_image, kernel)
    return tool, kernel


def measure(host: LabHost, kernel_image: Path, report: dict[str, Any]) -> None:
    """Add `kernel` and `linux_baseline` sections to the bench report."""
    tool, kernel = _install(host, kernel_image)
    ours: Report = _image_sizes(kernel_image)
    ours["clean_build_seconds"] = _clean_build_seconds()
    report["kernel"] = ours
    try:
        report["floor"] = _floor(host)
    except LabError as exc:
        report["floor"] = {"error": str(exc)}
    for mode in KERNEL_MODES:
        section: Report = ours if mode == "pv" else ours.setdefault(mode, {})
        section.update(_min_memory(host, tool, kernel, mode))
        name = f"bench-kernel-{mode}"
        config = _kernel_config(name, kernel, 16, mode)
        guest = _Guest(host, tool, name, config, ("data/test-vm/state", "ready"), True)
        _measure_guest(guest, "control/shutdown", "bench-unknown-request", section, migrate=True)
        try:
            section["pairs"] = _pairs(host, tool, kernel, mode)
        except LabError as exc:
            section["pairs"] = {"error": str(exc)}
    try:
        ours["xenstore"] = _round_trips(host, tool, kernel)
    except LabError as exc:
        ours["xenstore"] = {"error": str(exc)}
    try:
        _measure_linux(host, tool, report)
    finally:
        report["ack_targets"] = _targets(report)
    report["ack_interleaved"] = _interleaved_acks(host, tool, kernel)


def measure_acks(host: LabHost, kernel_image: Path) -> Report:
    """The floor and the control/shutdown ack latencies of ours (each mode) and of Linux, with
    the ack targets, on this lab alone: `invoke bench` runs it on the oxenstored lab."""
    tool, kernel = _install(host, kernel_image)
    report: Report = {"xenstored": host.xenstored, "kernel": {}}
    try:
        report["floor"] = _floor(host)
        for mode in KERNEL_MODES:
            name = f"bench-ack-{mode}"
            config = _kernel_config(name, kernel, 16, mode)
            guest = _Guest(host, tool, name, config, ("data/test-vm/state", "ready"), True)
            try:
                host.run(f"xl create -q {guest.config_path}", timeout=300)
                host.run(guest.wait_ready(), timeout=300)
                acks = guest.acktimes("control/shutdown", "bench-unknown-request", ACK_ROUNDS)
                ours = report["kernel"]
                (ours if mode == "pv" else ours.setdefault(mode, {}))["ack"] = latency_summary(acks)
            finally:
                guest.destroy()
        linux = _baseline_guest(host, tool)
        if linux is not None:
            try:
                host.run(f"xl create -q {linux.config_path}", timeout=300)
                host.run(linux.wait_ready(), timeout=300)
                report["linux_baseline"] = {
                    "ack": latency_summary(linux.acktimes("control/sysrq", "h", ACK_ROUNDS))
                }
            finally:
                linux.destroy()
    except LabError as exc:
        report["error"] = str(exc)
    report["ack_targets"] = _targets(report)
    report["ack_interleaved"] = _interleaved_acks(host, tool, kernel)
    return report


def _interleaved_acks(host: LabHost, tool: str, kernel: str) -> Report:
    """Ack latency of ours (PV) and of Linux measured in alternating blocks, both guests up."""
    linux = _baseline_guest(host, tool)
    if linux is None:
        return {"skipped": "the lab provides no baseline_guest_config()"}
    name = "bench-interleaved-pv"
    ours = _Guest(
        host,
        tool,
        name,
        _kernel_config(name, kernel, 16, "pv"),
        ("data/test-vm/state", "ready"),
        True,
    )
    ours_us: list[int] = []
    linux_us: list[int] = []
    try:
        for guest in (ours, linux):
            host.run(f"xl create -q {guest.config_path}", timeout=300)
            host.run(guest.wait_ready(), timeout=300)
        for _ in range(INTERLEAVED_BLOCKS):
            ours_us += ours.acktimes(
                "control/shutdown", "bench-unknown-request", INTERLEAVED_ROUNDS
            )
            linux_us += linux.acktimes("control/sysrq", "h", INTERLEAVED_ROUNDS)
    except LabError as exc:
        return {"error": str(exc)}
    finally:
        ours.destroy()
        linux.destroy()
    report: Report = {
        "blocks": INTERLEAVED_BLOCKS,
        "rounds_per_block": INTERLEAVED_ROUNDS,
        "kernel_ack": latency_summary(ours_us),
        "linux_ack": latency_summary(linux_us),
    }
    ratio = report["kernel_ack"]["median_ms"] / report["linux_ack"]["median_ms"]
    report["median_vs_linux"] = round(ratio, 3)
    report["meets_median_vs_linux"] = ratio <= MEDIAN_VS_LINUX_TARGET
    return report


def _baseline_guest(host: LabHost, tool: str) -> _Guest | None:
    """The Linux baseline guest, once its files are in dom0; None if the lab has none."""
    config_of = getattr(host, "baseline_guest_config", None)
    if config_of is None:
        return None
    host.install_baseline()
    return _Guest(
        host,
        tool,
        "bench-baseline",
        config_of("bench-baseline"),
        ("control/feature-poweroff", "1"),
        False,
    )


def _measure_linux(host: LabHost, tool: str, report: Report) -> None:
    baseline = _baseline_guest(host, tool)
    if baseline is None:
        report["linux_baseline"] = {"skipped": "the lab provides no baseline_guest_config()"}
        return
    sizes = host.run(
        "wc -c < /var/lib/xen-lab/baseline/vmlinuz; wc -c < /var/lib/xen-lab/baseline/initrd"
    ).stdout.split()
    linux: Report = {"kernel_bytes": int(sizes[0]), "initrd_bytes": int(sizes[1])}
    report["linux_baseline"] = linux
    _measure_guest(baseline, "control/sysrq", "h", linux, migrate=True)
