"""Plain xl test guests for the migration tests: one config, waits on xenstore, cleanup by name.

A migrated guest's domain is renamed NAME--incoming / NAME--migratedaway while it moves: a
cleanup destroys all three names, so a migration that failed half-way leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator

from xen_test_lab.dom0_xs import Dom0Script, wait_failure
from xen_test_lab.lab import LabHost
from xen_test_vm.xl import xl_config_text

WAIT_MS = 120_000


def pv_config(name: str, kernel: str) -> str:
    """A 16 MiB PV test guest with the heartbeat off: its console is only what a test causes."""
    return xl_config_text(
        {
            "name": name,
            "type": "pv",
            "kernel": kernel,
            "memory": 16,
            "extra": "heartbeat=0",
            "on_crash": "preserve",
        }
    )


def domid(host: LabHost, name: str) -> int:
    return int(host.run(f"xl domid {shlex.quote(name)}").stdout.strip())


def wait_keys(host: LabHost, name: str, values: dict[str, str]) -> int:
    """Wait (on xenstore watches) until the guest's keys hold these values; returns its domid."""
    current = domid(host, name)
    script = Dom0Script()
    for key, value in values.items():
        script.wait(key, f"/local/domain/{current}/{key}", value, WAIT_MS)
    failures = {key: wait_failure(answer) for key, answer in script.run(host).items()}
    assert not any(failures.values()), f"{host.ssh_alias} domain {current}: {failures}"
    return current


def destroy_everywhere(hosts: tuple[LabHost, ...], name: str) -> None:
    for host in hosts:
        for domain in (name, f"{name}--incoming", f"{name}--migratedaway"):
            host.run(f"xl destroy {shlex.quote(domain)}", check=False)


def wait_gone(host: LabHost, name: str, seconds: int = 30) -> bool:
    """True once no domain of that name exists on host (within seconds)."""
    result = host.run(
        f"for i in $(seq 1 {seconds * 10}); do xl domid {shlex.quote(name)} >/dev/null 2>&1 "
        "|| exit 0; sleep 0.1; done; exit 1",
        check=False,
    )
    return result.returncode == 0


@contextlib.contextmanager
def ready_pv_guest(
    host: LabHost, directory: str, name: str, kernel: str, cleanup: tuple[LabHost, ...] = ()
) -> Iterator[str]:
    """`xl create` a PV guest on host and wait until ready; afterwards destroy it on host and
    on the cleanup hosts (where a migration may have taken it)."""
    host.run(f"cat > {directory}/{name}.cfg", input=pv_config(name, kernel))
    host.run(f"xl create -q {directory}/{name}.cfg")
    try:
        wait_keys(host, name, {"data/test-vm/state": "ready"})
        yield name
    finally:
        destroy_everywhere((host, *cleanup), name)
