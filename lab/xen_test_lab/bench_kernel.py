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
- ours only: the smallest `memory=` (MiB) it boots in.
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

from .bench import latency_summary
from .dom0_xs import REPO_ROOT, Dom0Script, install_tool
from .errors import LabError
from .lab import LabHost

Report = dict[str, Any]

IMAGE_TARGET_BYTES = 16 * 1024
MEMORY_TARGET_MIB = 4
ACK_ROUNDS = 50
SAVE_RESTORE_CYCLES = 3
REMOTE_DIR = "/root/xen-test-vm-bench"
READY_TIMEOUT_MS = 120_000
REPO_KERNEL = REPO_ROOT / "kernel"


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


def _wait_script(tool: str, name: str, key: str, value: str) -> str:
    """Shell: wait (on a xenstore watch) until the named guest's key holds value."""
    return (
        f"d=$(xl domid {shlex.quote(name)}) && "
        f'echo "wait /local/domain/$d/{key} {_hex(value)} {READY_TIMEOUT_MS}" | {tool} '
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

    def destroy(self) -> None:
        self.host.run(f"xl destroy {shlex.quote(self.name)}", check=False)


def _measure_guest(guest: _Guest, ack_key: str, ack_value: str, result: Report) -> None:
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


def _min_memory(host: LabHost, tool: str, kernel: str) -> Report:
    """Walk memory= down from 4 MiB (up if 4 fails) to the smallest that reaches ready."""

    def boots(mib: int) -> tuple[bool, str]:
        name = f"bench-mem-{mib}"
        config = f'name = "{name}"\ntype = "pv"\nkernel = "{kernel}"\nmemory = {mib}\n'
        host.run(f"cat > {REMOTE_DIR}/{name}.cfg", input=config)
        created = host.run(f"xl create -q {REMOTE_DIR}/{name}.cfg", check=False)
        try:
            if created.returncode != 0:
                errors = [line for line in created.stderr.splitlines() if "error" in line]
                return False, (errors or ["xl create failed"])[0].strip()
            ready = host.run(_wait_script(tool, name, "data/test-vm/state", "ready"), check=False)
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


def measure(host: LabHost, kernel_image: Path, report: dict[str, Any]) -> None:
    """Add `kernel` and `linux_baseline` sections to the bench report."""
    host.run(f"mkdir -p {REMOTE_DIR}")
    tool = install_tool(host)
    kernel = f"{REMOTE_DIR}/test-vm.xen.gz"
    host.copy_in(kernel_image, kernel)

    ours: Report = _image_sizes(kernel_image)
    ours["clean_build_seconds"] = _clean_build_seconds()
    ours.update(_min_memory(host, tool, kernel))
    config = f'name = "bench-kernel"\ntype = "pv"\nkernel = "{kernel}"\nmemory = 16\n'
    guest = _Guest(host, tool, "bench-kernel", config, ("data/test-vm/state", "ready"), True)
    report["kernel"] = ours
    _measure_guest(guest, "control/shutdown", "bench-unknown-request", ours)

    config_of = getattr(host, "baseline_guest_config", None)
    if config_of is None:
        report["linux_baseline"] = {"skipped": "the lab provides no baseline_guest_config()"}
        return
    baseline = _Guest(
        host,
        tool,
        "bench-baseline",
        config_of("bench-baseline"),
        ("control/feature-poweroff", "1"),
        False,
    )
    sizes = host.run(
        "wc -c < /var/lib/xen-lab/baseline/vmlinuz; wc -c < /var/lib/xen-lab/baseline/initrd"
    ).stdout.split()
    linux: Report = {"kernel_bytes": int(sizes[0]), "initrd_bytes": int(sizes[1])}
    report["linux_baseline"] = linux
    _measure_guest(baseline, "control/sysrq", "h", linux)
