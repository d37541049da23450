"""Driving control/testing on real Xen from dom0 with few round trips (helpers for lab tests).

PROTOCOL.md section 6: the tester makes control/testing writable by the guest *before* writing
a message: create it empty, then set its permissions to `n0 b<domid>` (owner dom0, no access
for others, read and write for the guest). Writing first and fixing permissions afterwards races
with the kernel, which could find the key read-only and could not acknowledge it.
"""

from __future__ import annotations

import re
import shlex

from xen_test_lab.dom0_xs import Dom0Script
from xen_test_lab.lab import LabHost
from xen_test_vm.toolstack import VmSpec
from xen_test_vm.xl import xl_config

REMOTE_DIR = "/root/xen-test-vm-tests"
# Generous: under a loaded TCG host a guest may take seconds to be scheduled.
ACK_TIMEOUT_MS = 60_000


def console_log(name: str) -> str:
    return f"/var/log/xen/console/guest-{name}.log"


def make_testing_writable(script: Dom0Script, label: object, domid: int) -> None:
    """Create control/testing empty with read/write for the guest (PROTOCOL.md section 6)."""
    path = f"/local/domain/{domid}/control/testing"
    script.write((label, "testing-create"), path, "")
    script.chmod((label, "testing-chmod"), path, "n0", f"b{domid}")


def send_message(script: Dom0Script, label: object, domid: int, message: str | bytes) -> None:
    """Write a message and wait for its acknowledgement (the key becomes empty again)."""
    path = f"/local/domain/{domid}/control/testing"
    script.send((label, "testing-acked"), path, message, ACK_TIMEOUT_MS)


def guest_config(name: str, kernel: str, memory_mib: int = 16, mode: str = "pv") -> str:
    """A test guest that stays visible after any shutdown, so the reason can be read."""
    spec = VmSpec(
        name=name,
        kernel=kernel,
        memory_mib=memory_mib,
        on_poweroff="preserve",
        on_reboot="preserve",
        on_crash="preserve",
        mode=mode,
    )
    return xl_config(spec)


def create_guests(host: LabHost, names: list[str], kernel: str, mode: str = "pv") -> None:
    """`xl create` the guests in one round trip (each boots while the next is created)."""
    script = [f"mkdir -p {REMOTE_DIR}"]
    for name in names:
        config = f"{REMOTE_DIR}/{name}.cfg"
        script.append(f"cat > {config} <<'EOF'\n{guest_config(name, kernel, mode=mode)}EOF")
        script.append(f"xl create -q {config}")
    host.run("\n".join(script), timeout=900)


def destroy_guests(host: LabHost, names: list[str]) -> None:
    """Destroy whatever is left of the guests (teardown: never fails)."""
    quoted = " ".join(shlex.quote(n) for n in names)
    host.run(
        f"for n in {quoted}; do xl destroy $n 2>/dev/null; done; true", check=False, timeout=900
    )


def xl_states(host: LabHost, names: list[str]) -> dict[str, tuple[str, str]]:
    """(state flags, shutdown reason code) per named domain from one `xl list -v`."""
    listing = host.run("xl list -v").stdout
    states: dict[str, tuple[str, str]] = {}
    for line in listing.splitlines()[1:]:
        # Name ID Mem VCPUs State Time(s) UUID Reason-Code Security-Label
        fields = line.split()
        if len(fields) >= 8 and fields[0] in names:
            states[fields[0]] = (fields[4], fields[7])
    return states


def domain_condition(flags: str) -> str:
    """running, shutdown or crashed, from `xl list` state flags such as -b---- or ---s--."""
    if "c" in flags:
        return "crashed"
    if "s" in flags:
        return "shutdown"
    return "running" if re.search("[rb]", flags) else f"other ({flags})"


def console_logs(host: LabHost, names: list[str]) -> dict[str, list[str]]:
    """Each guest's console lines, fetched in one round trip."""
    script = "; ".join(f"echo '=== {n}'; tr -d '\\r' < {console_log(n)} 2>/dev/null" for n in names)
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in host.run(script).stdout.splitlines():
        if line.startswith("=== ") and line[4:] in names:
            current = out.setdefault(line[4:], [])
        else:
            current.append(line)
    return out


def contains_run(lines: list[str], run: list[str]) -> bool:
    """True if `run` appears as consecutive lines of `lines`."""
    n = len(run)
    return any(lines[i : i + n] == run for i in range(len(lines) - n + 1))
