"""Boot the lab and talk to its dom0: `with running_lab() as host: host.run("xl info")`."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xen_test_vm.errors import ClientError, SSHError
from xen_test_vm.ssh import SSH_FAILED, SSHHost
from xen_test_vm.xl import xl_config_text

from . import qemu
from .cpio import CpioWriter
from .errors import LabCommandError, LabError
from .hypervisor import DEFAULT_HYPERVISOR
from .image import SHIM_FILE, SHIM_PATH, LabImage, ensure_image

SSH_ALIAS = "xen-lab"
BOOT_TIMEOUT = 300.0
BASELINE_DIR = "/var/lib/xen-lab/baseline"


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "xen-test-vm-lab", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text()


def write_ssh_files(run_dir: Path, port: int) -> tuple[Path, str, str]:
    """Create the lab's client key, host key, pinned known_hosts and ssh_config.

    Returns (ssh_config, authorized public key, private host key).
    """
    if not shutil.which("ssh-keygen"):
        raise LabError(
            "ssh-keygen not found: run scripts/bootstrap (Debian package openssh-client)"
        )
    client_public = _keygen(run_dir / "id_ed25519")
    host_public = _keygen(run_dir / "ssh_host_ed25519_key")
    host_fields = host_public.split()
    (run_dir / "known_hosts").write_text(f"{SSH_ALIAS} {host_fields[0]} {host_fields[1]}\n")
    config = run_dir / "ssh_config"
    config.write_text(ssh_host_block(SSH_ALIAS, port, run_dir))
    return config, client_public, (run_dir / "ssh_host_ed25519_key").read_text()


def ssh_host_block(alias: str, port: int, run_dir: Path, host_key_alias: str = "") -> str:
    """One ssh_config Host block for a lab dom0 on 127.0.0.1:port, with run_dir's key files.

    host_key_alias: the name its host key is pinned under in run_dir's known_hosts, when the
    block calls the dom0 something else (default: alias).
    """
    return f"""Host {alias}
    HostName 127.0.0.1
    Port {port}
    User root
    IdentityFile {run_dir / "id_ed25519"}
    IdentitiesOnly yes
    HostKeyAlias {host_key_alias or alias}
    UserKnownHostsFile {run_dir / "known_hosts"}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ControlMaster auto
    ControlPath {run_dir / "cm-%C"}
    ControlPersist 120
    ServerAliveInterval 10
    LogLevel ERROR
"""


# The xenstoreds dom0 can run: C xenstored (Debian's usual), oxenstored (XenServer's, XCP-ng's).
XENSTOREDS = ("cxenstored", "oxenstored")
DEFAULT_XENSTORED = "cxenstored"
# The longest value each accepts in one write (oxenstored: quota-maxsize in the packaged
# /etc/xen/oxenstored.conf, dom0's writes included; C xenstored: the 4096-byte payload).
VALUE_MAX = {"cxenstored": 4096, "oxenstored": 2048}


def baseline_files(image: LabImage) -> tuple[str, str]:
    """Where the image keeps the baseline guest's kernel and initramfs ("" if it has none)."""
    return (str(image.baseline_kernel or ""), str(image.baseline_initrd or ""))


def require_xenstored(xenstored: str) -> None:
    if xenstored not in XENSTOREDS:
        raise LabError(f"unknown xenstored {xenstored!r}: use {' or '.join(XENSTOREDS)}")


def boot_initrd(
    image: LabImage,
    run_dir: Path,
    authorized_key: str,
    host_key: str,
    xenstored: str = DEFAULT_XENSTORED,
    extra_files: dict[str, tuple[bytes, int]] | None = None,
) -> Path:
    """The cached dom0 initramfs plus a small archive with this run's keys and choice of
    xenstored (Linux merges them; dom0's init reads /etc/xen-lab/xenstored). extra_files:
    more files by path (content, mode), e.g. the two-host lab's peer keys and address."""
    initrd = run_dir / "dom0-initrd.cpio"
    with initrd.open("wb") as out:
        with image.dom0_initramfs.open("rb") as base:
            shutil.copyfileobj(base, out)
        writer = CpioWriter(out)
        writer.file("root/.ssh/authorized_keys", authorized_key.encode(), 0o600)
        writer.file("etc/ssh/ssh_host_ed25519_key", host_key.encode(), 0o600)
        # The kernel's unpacker creates no parent directories: name the new one first.
        writer.directory("etc/xen-lab")
        writer.file("etc/xen-lab/xenstored", f"{xenstored}\n".encode(), 0o644)
        for path, (content, mode) in (extra_files or {}).items():
            writer.file(path, content, mode)
        writer.close()
    return initrd


@dataclass
class LabHost:
    """A handle on the lab's dom0: SSH address and options, commands, files, guest consoles."""

    ssh_config: Path
    port: int
    run_dir: Path
    ready_seconds: float = 0.0  # QEMU start -> `xl info` answers over SSH
    init_seconds: float = 0.0  # QEMU start -> dom0's init reports ready on the console
    # QEMU start -> the end of each boot phase (qemu.BOOT_PHASE_MARKS), then "ssh" (ready).
    boot_phases: dict[str, float] = field(default_factory=dict)
    accel: str = "tcg"
    qemu_pid: int = 0
    ssh_alias: str = SSH_ALIAS
    # What Xen it booted (LabImage.describe()): hypervisor kind, Debian versions, build time.
    xen: dict[str, object] = field(default_factory=dict)
    xenstored: str = DEFAULT_XENSTORED
    # The baseline guest's kernel and initramfs on this machine (LabImage), copied in on use.
    baseline_files: tuple[str, str] = ("", "")

    _runner: SSHHost | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def ssh(self) -> SSHHost:
        """The house's one SSH runner (the client's), aimed at dom0 through the lab's config."""
        if self._runner is None:
            self._runner = SSHHost(self.ssh_alias, ssh_config=self.ssh_config)
        return self._runner

    def run(
        self,
        command: str,
        check: bool = True,
        timeout: float = 120.0,
        input: str | bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command in dom0 (an ssh failure is exit status 255 unless check)."""
        data = input.encode() if isinstance(input, str) else input
        try:
            result = self.ssh.run(["sh", "-c", command], input=data, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:  # ssh itself could not connect in time
            raise LabError(f"dom0 command timed out after {timeout:.0f} s: {command}") from None
        except SSHError as exc:
            if "did not finish within" in str(exc):
                raise LabError(f"dom0 command timed out after {timeout:.0f} s: {command}") from None
            if check:
                raise LabError(f"dom0 unreachable over SSH: {exc}") from None
            return subprocess.CompletedProcess(command, SSH_FAILED, "", str(exc))
        if check and result.returncode != 0:
            raise LabCommandError(command, result.returncode, result.stdout, result.stderr)
        return subprocess.CompletedProcess(command, result.returncode, result.stdout, result.stderr)

    @property
    def value_max(self) -> int:
        """The longest xenstore value this lab's xenstored accepts in one write."""
        return VALUE_MAX[self.xenstored]

    def copy_in(self, local: Path | str, remote: str) -> None:
        """Copy a local file into dom0 (atomically: a temporary name, then rename)."""
        try:
            self.ssh.copy_in(Path(local), remote)
        except ClientError as exc:
            raise LabError(f"copying {local} to dom0:{remote} failed: {exc}") from None

    def close(self) -> None:
        """End the SSH connection (no ssh master outlives the lab)."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def virt_caps(self) -> set[str]:
        """Xen's virt_caps (`xl info`): "shadow" means PV guests can live-migrate."""
        for line in self.run("xl info", timeout=60).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "virt_caps":
                return set(value.split())
        raise LabError("xl info shows no virt_caps")

    def migrate(self, guest_name: str, timeout: float = 300.0) -> float:
        """Live-migrate a guest to this same host; seconds `xl migrate` took (dom0's clock).

        xl's default transport is ssh to the destination; `-s ""` makes xl run the "host"
        argument itself as the receiver, so the stream goes through a pipe in dom0.
        """
        name = shlex.quote(guest_name)
        out = self.run(
            "t0=$(cut -d' ' -f1 /proc/uptime); "
            f'xl migrate -s "" {name} "xl migrate-receive" >/tmp/xl-migrate.log 2>&1 || '
            "{ tail -n 3 /tmp/xl-migrate.log >&2; exit 1; }; "
            "t1=$(cut -d' ' -f1 /proc/uptime); echo \"$t0 $t1\"",
            timeout=timeout,
        ).stdout.split()
        return round(float(out[-1]) - float(out[-2]), 2)

    def console_log(self, guest_name: str) -> str:
        """What the named guest has printed on its PV console so far."""
        path = f"/var/log/xen/console/guest-{guest_name}.log"
        return self.run(f"cat {shlex.quote(path)} 2>/dev/null || true").stdout

    def xen_console(self) -> str:
        """Xen's and dom0's serial console, as QEMU recorded it."""
        return (self.run_dir / "console.log").read_text(errors="replace")

    def install_baseline(self) -> None:
        """Copy the Linux baseline guest's kernel and initramfs into dom0, unless there."""
        there = f"test -f {BASELINE_DIR}/vmlinuz -a -f {BASELINE_DIR}/initrd"
        if self.run(there, check=False).returncode == 0:
            return
        kernel, initrd = self.baseline_files
        if not kernel or not initrd:
            raise LabError("this lab handle does not know where the baseline guest's files are")
        self.run(f"mkdir -p {BASELINE_DIR}")
        self.copy_in(kernel, f"{BASELINE_DIR}/vmlinuz")
        self.copy_in(initrd, f"{BASELINE_DIR}/initrd")

    def install_shim(self) -> None:
        """Copy Debian's PV shim into dom0 where libxl looks for it (PV-in-PVH guests)."""
        if self.run(f"test -f {SHIM_PATH}", check=False).returncode == 0:
            return
        kernel = self.baseline_files[0]
        if not kernel:
            raise LabError("this lab handle does not know where the image's files are")
        self.run(f"mkdir -p {SHIM_PATH.rsplit('/', 1)[0]}")
        self.copy_in(Path(kernel).with_name(SHIM_FILE), SHIM_PATH)

    def baseline_guest_config(self, name: str = "baseline", memory_mib: int = 128) -> str:
        """An xl config for the Linux baseline guest: Debian's kernel and a busybox initramfs."""
        return xl_config_text(
            {
                "name": name,
                "type": "pv",
                "kernel": f"{BASELINE_DIR}/vmlinuz",
                "ramdisk": f"{BASELINE_DIR}/initrd",
                "extra": "console=hvc0 quiet",
                "memory": memory_mib,
                "vcpus": 1,
                "on_crash": "preserve",
            }
        )


def _choose_accel(accel: str) -> str:
    if accel == "auto":
        return "kvm" if qemu.kvm_usable() else "tcg"
    if accel not in ("tcg", "kvm"):
        raise LabError(f"unknown accelerator {accel!r}: use auto, tcg or kvm")
    return accel


def boot(
    run_dir: Path,
    port: int | None = None,
    accel: str = "auto",
    memory_mib: int = qemu.GUEST_RAM_MIB,
    detached: bool = False,
    hypervisor: str = DEFAULT_HYPERVISOR,
    xenstored: str = DEFAULT_XENSTORED,
    dom0_mib: int = qemu.DOM0_MIB,
) -> tuple[qemu.QemuProcess, LabHost]:
    """Build (if needed) and boot the lab; return the QEMU process and a ready host handle.

    hypervisor: "shadow" (Debian's xen source built with shadow paging, so PV guests can
    live-migrate) or "debian" (the binary package's hypervisor, no shadow paging).
    xenstored: "cxenstored" or "oxenstored" (started as XAPI hosts start it, with the
    package's /etc/xen/oxenstored.conf).
    """
    require_xenstored(xenstored)
    qemu.require_qemu()
    if memory_mib < dom0_mib + 256:
        raise LabError(f"--memory must be at least {dom0_mib + 256} MiB (dom0 has {dom0_mib})")
    qemu.require_memory(memory_mib)
    if port is None:
        port = qemu.free_port()
    else:
        qemu.require_port_free(port)
    image = ensure_image(hypervisor_kind=hypervisor)
    ssh_config, client_key, host_key = write_ssh_files(run_dir, port)
    initrd = boot_initrd(image, run_dir, client_key, host_key, xenstored)
    chosen = _choose_accel(accel)

    def start(accel: str) -> qemu.QemuProcess:
        return qemu.start(
            image.xen,
            image.dom0_kernel,
            initrd,
            run_dir,
            port,
            accel,
            memory_mib,
            detached,
            dom0_mib=dom0_mib,
        )

    process = start(chosen)
    try:
        try:
            init_seconds = process.wait_ready(BOOT_TIMEOUT if chosen == "tcg" else 60.0)
        except LabError:
            if chosen != "kvm" or accel != "auto":
                raise
            # KVM looked usable but Xen did not come up under it: software emulation always works.
            process.stop()
            chosen = "tcg"
            process = start(chosen)
            init_seconds = process.wait_ready(BOOT_TIMEOUT)
        host = LabHost(
            ssh_config,
            port,
            run_dir,
            accel=chosen,
            qemu_pid=process.pid,
            xen={**image.describe(), "xenstored": xenstored},
            xenstored=xenstored,
            baseline_files=baseline_files(image),
        )
        host.init_seconds = init_seconds
        _wait_for_ssh(host, process)
        host.ready_seconds = time.monotonic() - process.started
        host.boot_phases = {**process.phase_seen, "ssh": round(host.ready_seconds, 2)}
        return process, host
    except BaseException:
        process.stop()
        raise


def _wait_for_ssh(host: LabHost, process: qemu.QemuProcess) -> None:
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        result = host.run("xl info >/dev/null && echo ok", check=False, timeout=30)
        if result.returncode == 0 and result.stdout.strip() == "ok":
            return
        last = result.stderr.strip()
        if process.process.poll() is not None:
            raise LabError(f"QEMU exited before SSH came up: {last}")
        time.sleep(0.1)
    raise LabError(f"dom0 did not answer over SSH: {last or 'no error text'}")


def close_ssh(host: LabHost) -> None:
    """End the shared SSH connections so no ssh master outlives the lab: the runner's own, and
    one a plain `ssh -F ssh_config xen-lab` left (the config's ControlPersist)."""
    if host.ssh_config.is_file():
        host.ssh.stop_config_master()
    host.close()


@contextlib.contextmanager
def running_lab(
    port: int | None = None,
    accel: str = "auto",
    memory_mib: int = qemu.GUEST_RAM_MIB,
    hypervisor: str = DEFAULT_HYPERVISOR,
    xenstored: str = DEFAULT_XENSTORED,
    dom0_mib: int = qemu.DOM0_MIB,
) -> Iterator[LabHost]:
    """Boot the lab for the duration of the block; QEMU is always stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="xen-lab-") as tmp:
        run_dir = Path(tmp)
        process, host = boot(
            run_dir,
            port=port,
            accel=accel,
            memory_mib=memory_mib,
            hypervisor=hypervisor,
            xenstored=xenstored,
            dom0_mib=dom0_mib,
        )
        try:
            yield host
        finally:
            close_ssh(host)
            process.stop()
