"""`invoke bench` section: time from writing control/testing to its acknowledgement.

Measured in dom0 by xtv-xs (kernel/tests/dom0/) with CLOCK_MONOTONIC and a xenstore watch on
the key, without sleeps: each round writes {"when":"now","action":"ignore"} (a valid message
that leaves the guest running) and waits until the kernel has written "" back. The key is made
writable by the guest first (PROTOCOL.md section 6).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from xen_test_vm.toolstack import VmSpec
from xen_test_vm.xl import xl_config

from .bench import latency_summary
from .dom0_xs import Dom0Script, domids, install_tool
from .errors import LabError
from .lab import LabHost

ROUNDS = 100
MESSAGE = '{"when":"now","action":"ignore"}'
REMOTE_DIR = "/root/xen-test-vm-bench"
GUEST = "bench-testing"
TIMEOUT_MS = 120_000


def measure(host: LabHost, kernel_image: Path, report: dict[str, Any]) -> None:
    """Add `testing_ack` (control/testing write -> acknowledgement) to the bench report."""
    result: dict[str, Any] = {"message": MESSAGE}
    kernel = f"{REMOTE_DIR}/test-vm.xen.gz"
    config = xl_config(VmSpec(name=GUEST, kernel=kernel, memory_mib=16))
    try:
        tool = install_tool(host)
        host.run(f"mkdir -p {REMOTE_DIR} && cat > {REMOTE_DIR}/{GUEST}.cfg", input=config)
        host.copy_in(kernel_image, kernel)
        host.run(f"xl create -q {REMOTE_DIR}/{GUEST}.cfg", timeout=300)
        domid = domids(host, [GUEST])[GUEST]
        home = f"/local/domain/{domid}"
        path = f"{home}/control/testing"
        script = Dom0Script()
        script.wait("ready", f"{home}/data/test-vm/state", "ready", TIMEOUT_MS)
        script.write("create", path, "")
        script.chmod("chmod", path, "n0", f"b{domid}")
        script.add("ack", f"acktime {path} {MESSAGE.encode().hex()} {ROUNDS} {TIMEOUT_MS}")
        answers = script.run(host, timeout=900)
        if not answers["ready"].startswith("ok") or answers["chmod"] != "ok":
            raise LabError(f"{GUEST} not ready or key not writable: {answers}")
        times = answers["ack"].split()
        if times[0] != "acktime" or "timeout" in times:
            raise LabError(f"control/testing was not acknowledged: {answers['ack']}")
        result.update(latency_summary([int(us) for us in times[1:]]))
        result["tool"] = tool
    except LabError as exc:
        result["error"] = str(exc)
    finally:
        host.run(f"xl destroy {shlex.quote(GUEST)}", check=False)
    report["testing_ack"] = result
