"""`invoke bench` section: live migration from one lab host to the other (issue 10).

On the two-host lab (xen_test_lab.pair, both on the shadow-paging hypervisor), each guest kind
is created on the first host and migrated with `xl migrate NAME xen-lab-2` (xl's own transport:
ssh from dom0 to dom0 over the QEMU link), then back, MIGRATIONS times each way:
- ours, PV and PVH: from `xl migrate` on the source until data/test-vm/state is `ready` on the
  destination (the kernel writes it after its resume into the new domain);
- Linux, the baseline guest (PV, 128 MiB): until `xl migrate` returns, as for the one-host
  migration (it writes no key on resume).
Each figure is timed by the source dom0's clock plus, for ours, the wait on the destination
(by its clock), so the SSH round trip between the two is left out.
"""

from __future__ import annotations

import shlex
import statistics
from pathlib import Path
from typing import Any

from .bench_kernel import REMOTE_DIR, _baseline_guest, _Guest, _kernel_config, _timed
from .dom0_xs import install_tool
from .errors import LabError
from .lab import LabHost
from .pair import HOST_NAMES, running_pair

Report = dict[str, Any]

MIGRATIONS = 2  # each way
KERNEL_MIB = 16
PAIR_MODES = ("pv", "pvh")


def _migrate(source: LabHost, destination: LabHost, guest: _Guest, to: str) -> float:
    """Seconds to live-migrate guest from source to the host called `to`, until it is ready."""
    seconds, _ = _timed(
        source, f"xl migrate {shlex.quote(guest.name)} {to} >/dev/null", timeout=600
    )
    if guest.ready_after_restore:
        waited, _ = _timed(destination, guest.wait_ready(), timeout=180)
        seconds += waited
    return round(seconds, 2)


def _there_and_back(hosts: tuple[LabHost, LabHost], guests: tuple[_Guest, _Guest]) -> Report:
    """Create the guest on the first host; migrate it to the second and back, MIGRATIONS times."""
    first, second = hosts
    result: Report = {}
    first.run(f"xl create -q {guests[0].config_path}", timeout=300)
    first.run(guests[0].wait_ready(), timeout=300)
    times: list[float] = []
    result["seconds"] = times
    try:
        for _ in range(MIGRATIONS):
            times.append(_migrate(first, second, guests[1], HOST_NAMES[1]))
            times.append(_migrate(second, first, guests[0], HOST_NAMES[0]))
        result["median_seconds"] = statistics.median(times)
    except LabError as exc:
        result["error"] = str(exc).splitlines()[-1:]
    finally:
        for guest in guests:
            guest.destroy()
    return result


def measure_pair(kernel_image: Path, hypervisor: str = "shadow") -> Report:
    """Host-to-host live migration of ours (each mode) and of the Linux baseline."""
    report: Report = {"hypervisor": hypervisor, "migrations_each_way": MIGRATIONS}
    with running_pair(hypervisor=hypervisor) as hosts:
        report["virt_caps"] = sorted(hosts[0].virt_caps())
        kernel = f"{REMOTE_DIR}/test-vm.xen.gz"
        tools = []
        for host in hosts:
            tools.append(install_tool(host))
            host.run(f"mkdir -p {REMOTE_DIR}")
            host.copy_in(kernel_image, kernel)
        for mode in PAIR_MODES:
            name = f"bench-pair-{mode}"
            config = _kernel_config(name, kernel, KERNEL_MIB, mode)
            guests = tuple(
                _Guest(host, tool, name, config, ("data/test-vm/state", "ready"), True)
                for host, tool in zip(hosts, tools, strict=True)
            )
            report[f"kernel_{mode}"] = _there_and_back(hosts, (guests[0], guests[1]))
        baselines = [_baseline_guest(host, tool) for host, tool in zip(hosts, tools, strict=True)]
        if baselines[0] is None or baselines[1] is None:
            report["linux_baseline"] = {"skipped": "the lab provides no baseline_guest_config()"}
        else:
            report["linux_baseline"] = _there_and_back(hosts, (baselines[0], baselines[1]))
    return report
