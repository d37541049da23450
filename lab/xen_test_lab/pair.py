"""Two lab hosts whose dom0s reach each other only over QEMU's own link on 127.0.0.1.

`with running_pair() as (first, second): first.run("xl migrate NAME xen-lab-2")`

Each host is a lab as `lab.boot` makes it, plus a second NIC on a QEMU socket netdev (host 1
listens on a free port of 127.0.0.1, host 2 connects to it): the dom0s are 10.1.0.1 and
10.1.0.2 on that link and nowhere else, and know each other as xen-lab-1 and xen-lab-2. Both
hold one shared "peer" key and each other's host keys, so `xl migrate` (ssh to the peer) works
as root without questions. The test machine reaches both through one ssh_config, under the same
two names, so a name means the same host to the client and to dom0.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from . import qemu
from .errors import LabError
from .hypervisor import DEFAULT_HYPERVISOR
from .image import ensure_image
from .lab import (
    BOOT_TIMEOUT,
    DEFAULT_XENSTORED,
    LabHost,
    _choose_accel,
    _keygen,
    _wait_for_ssh,
    baseline_files,
    boot_initrd,
    close_ssh,
    require_xenstored,
    ssh_host_block,
)

HOST_NAMES = ("xen-lab-1", "xen-lab-2")
PEER_SUBNET = "10.1.0"
# Distinct MACs on the link: each QEMU would give its second NIC the same default one.
PEER_MACS = ("52:54:00:10:01:01", "52:54:00:10:01:02")


def peer_address(index: int) -> str:
    """The link address of host index (0 or 1)."""
    return f"{PEER_SUBNET}.{index + 1}"


def _ssh_config(run_dir: Path, ports: tuple[int, int]) -> Path:
    config = run_dir / "ssh_config"
    config.write_text(
        "".join(
            ssh_host_block(name, port, run_dir)
            for name, port in zip(HOST_NAMES, ports, strict=True)
        )
    )
    return config


def _dom0_files(index: int, peer_key: str, host_publics: list[str]) -> dict[str, tuple[bytes, int]]:
    """What host index's dom0 needs on top of a single lab: name, link address, peer keys."""
    hosts = "127.0.0.1 localhost\n" + "".join(
        f"{peer_address(i)} {name}\n" for i, name in enumerate(HOST_NAMES)
    )
    known = "".join(
        f"{name},{peer_address(i)} {' '.join(public.split()[:2])}\n"
        for i, (name, public) in enumerate(zip(HOST_NAMES, host_publics, strict=True))
    )
    return {
        "etc/xen-lab/hostname": (f"{HOST_NAMES[index]}\n".encode(), 0o644),
        "etc/xen-lab/peer-address": (f"{peer_address(index)}/24\n".encode(), 0o644),
        "etc/hosts": (hosts.encode(), 0o644),
        "root/.ssh/id_ed25519": (peer_key.encode(), 0o600),
        "root/.ssh/known_hosts": (known.encode(), 0o644),
    }


def boot_pair(
    run_dir: Path,
    accel: str = "auto",
    memory_mib: int = qemu.GUEST_RAM_MIB,
    detached: bool = False,
    hypervisor: str = DEFAULT_HYPERVISOR,
    xenstored: str = DEFAULT_XENSTORED,
) -> tuple[list[qemu.QemuProcess], list[LabHost]]:
    """Boot both hosts at once; return their QEMU processes and ready host handles."""
    require_xenstored(xenstored)
    qemu.require_qemu()
    qemu.require_memory(2 * memory_mib)
    image = ensure_image(hypervisor_kind=hypervisor)
    chosen = _choose_accel(accel)
    ports = (qemu.free_port(), qemu.free_port())
    link_port = qemu.free_port()
    if len({*ports, link_port}) != 3:
        raise LabError("could not find three free ports on 127.0.0.1 for the two-host lab")
    client_public = _keygen(run_dir / "id_ed25519")
    peer_public = _keygen(run_dir / "peer_ed25519")
    peer_key = (run_dir / "peer_ed25519").read_text()
    host_publics = [_keygen(run_dir / f"host{i + 1}_ed25519") for i in range(2)]
    (run_dir / "known_hosts").write_text(
        "".join(
            f"{name} {' '.join(public.split()[:2])}\n"
            for name, public in zip(HOST_NAMES, host_publics, strict=True)
        )
    )
    ssh_config = _ssh_config(run_dir, ports)
    processes: list[qemu.QemuProcess] = []
    try:
        for index in range(2):
            host_dir = run_dir / HOST_NAMES[index]
            host_dir.mkdir()
            initrd = boot_initrd(
                image,
                host_dir,
                client_public + peer_public,
                (run_dir / f"host{index + 1}_ed25519").read_text(),
                xenstored,
                _dom0_files(index, peer_key, host_publics),
            )
            side = "listen" if index == 0 else "connect"
            link = [
                "-netdev", f"socket,id=peer,{side}=127.0.0.1:{link_port}",
                "-device", f"virtio-net-pci,netdev=peer,mac={PEER_MACS[index]}",
            ]  # fmt: skip
            processes.append(
                qemu.start(
                    image.xen,
                    image.dom0_kernel,
                    initrd,
                    host_dir,
                    ports[index],
                    chosen,
                    memory_mib,
                    detached,
                    link,
                )
            )
            if index == 0:
                time.sleep(0.5)  # host 2's QEMU connects at start: host 1 must be listening
        hosts = []
        for index, process in enumerate(processes):
            process.wait_ready(BOOT_TIMEOUT)
            host = LabHost(
                ssh_config,
                ports[index],
                run_dir / HOST_NAMES[index],
                accel=chosen,
                qemu_pid=process.pid,
                ssh_alias=HOST_NAMES[index],
                xen={**image.describe(), "xenstored": xenstored},
                xenstored=xenstored,
                baseline_files=baseline_files(image),
            )
            _wait_for_ssh(host, process)
            host.ready_seconds = time.monotonic() - process.started
            hosts.append(host)
        for index, host in enumerate(hosts):
            other = HOST_NAMES[1 - index]
            # The link and the peer keys, checked once: ssh to the other dom0 by its name.
            result = host.run(f"ssh -o BatchMode=yes {other} hostname", check=False, timeout=60)
            if result.returncode != 0 or result.stdout.strip() != other:
                raise LabError(
                    f"{HOST_NAMES[index]} cannot reach {other} over the peer link: "
                    f"{(result.stderr or result.stdout).strip()[-300:]}"
                )
        return processes, hosts
    except BaseException:
        for process in processes:
            process.stop()
        raise


@contextlib.contextmanager
def running_pair(
    accel: str = "auto",
    memory_mib: int = qemu.GUEST_RAM_MIB,
    hypervisor: str = DEFAULT_HYPERVISOR,
    xenstored: str = DEFAULT_XENSTORED,
) -> Iterator[tuple[LabHost, LabHost]]:
    """Boot the two-host lab for the block; both QEMUs are always stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="xen-lab-pair-") as tmp:
        processes, hosts = boot_pair(
            Path(tmp),
            accel=accel,
            memory_mib=memory_mib,
            hypervisor=hypervisor,
            xenstored=xenstored,
        )
        try:
            yield hosts[0], hosts[1]
        finally:
            for host in hosts:
                close_ssh(host)
            for process in processes:
                process.stop()
