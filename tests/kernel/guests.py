"""Test guests running the xen-test-vm kernel on the lab host, seen from dom0.

Everything here observes the guest the way a toolstack does: through `xl`, xenstore and the
console log that xenconsoled writes in dom0. Waits run as one small shell loop in dom0 (one SSH
round trip), so tests stay quick even though each check is a fresh xenstore read.
"""

from __future__ import annotations

import itertools
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from xen_test_lab.dom0_xs import REMOTE_TOOL
from xen_test_lab.lab import LabHost
from xen_test_lab.qemu import guest_cpuid
from xen_test_vm.toolstack import VmSpec
from xen_test_vm.xl import xl_config as client_xl_config

REMOTE_DIR = "/root/xen-test-vm-tests"
REMOTE_KERNEL = f"{REMOTE_DIR}/test-vm.xen.gz"
# Under QEMU TCG an `xl create` takes about a second; the kernel is ready a few ms later.
READY_TIMEOUT = 60.0
DEFAULT_MEMORY_MIB = 16
# The boot modes of the one kernel image: xl's `type`.
GUEST_MODES = ("pv", "pvh")
# xtv-xs (kernel/tests/dom0, installed by the `lab_kernel` fixture): watch-based waits in dom0.
DOM0_TOOL = REMOTE_TOOL
WAIT_ROUND_MS = 2000

_names = itertools.count(1)


def unique_name(prefix: str) -> str:
    """A guest name not used before in this session, so console logs never mix two guests."""
    return f"xtv-{prefix}-{next(_names)}-{int(time.time()) % 100000}"


def xl_config(
    name: str,
    kernel: str = REMOTE_KERNEL,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    cmdline: str = "",
    on_crash: str = "preserve",
    mode: str = "pv",
) -> str:
    """The client's xl config of a test guest (one vCPU) booting in `mode` (pv, pvh or
    pv_in_pvh)."""
    spec = VmSpec(
        name=name,
        kernel=kernel,
        memory_mib=memory_mib,
        cmdline=cmdline,
        on_crash=on_crash,
        mode=mode,
    )
    return client_xl_config(spec, guest_cpuid(mode))


@dataclass
class Guest:
    """One test guest, addressed by name: its domid changes on reboot, restore and migration."""

    host: LabHost
    name: str
    config_path: str
    destroyed: bool = field(default=False)

    # -- identity and state -------------------------------------------------------------------

    def domid(self) -> int:
        """The current domid (asks xl; fails if the domain does not exist)."""
        return int(self.host.run(f"xl domid {shlex.quote(self.name)}").stdout.strip())

    def exists(self) -> bool:
        return self.host.run(f"xl domid {shlex.quote(self.name)}", check=False).returncode == 0

    def xl_state(self) -> str:
        """The state column of `xl list` (e.g. `-b----`, `---sc-`), or "" if gone."""
        result = self.host.run(f"xl list {shlex.quote(self.name)}", check=False)
        if result.returncode != 0:
            return ""
        fields = result.stdout.strip().splitlines()[-1].split()
        return fields[4]

    def home(self) -> str:
        return f"/local/domain/{self.domid()}"

    # -- xenstore, relative to the guest's home -------------------------------------------------

    def read(self, key: str) -> str | None:
        """The value of home/key, or None if it does not exist."""
        result = self.host.run(f"xenstore-read {self.home()}/{key}", check=False)
        return result.stdout.rstrip("\n") if result.returncode == 0 else None

    def write(self, key: str, value: str) -> None:
        self.host.run(f"xenstore-write {self.home()}/{key} {shlex.quote(value)}")

    def status(self) -> dict[str, str]:
        """data/test-vm/* as a dict (PROTOCOL.md section 5)."""
        listing = self.host.run(f"xenstore-ls {self.home()}/data/test-vm").stdout
        pairs = (re.match(r'^(\S+) = "(.*)"$', line) for line in listing.splitlines())
        return {m.group(1): m.group(2) for m in pairs if m}

    def wait_for_key(self, key: str, value: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until home/key holds exactly `value`.

        xtv-xs waits on a xenstore watch; it is restarted with a fresh domid every couple of
        seconds, because reboot and restore move the guest to a new domain while we wait.
        """
        rounds = max(1, int(timeout / WAIT_ROUND_MS * 1000))
        script = (
            f"for i in $(seq {rounds}); do "
            f"d=$(xl domid {shlex.quote(self.name)} 2>/dev/null) && "
            f'echo "wait /local/domain/$d/{key} {value.encode().hex()} {WAIT_ROUND_MS}" '
            f"| {DOM0_TOOL} | grep -q '^ok' && exit 0; "
            '[ -n "$d" ] || usleep 200000; done; exit 1'
        )
        result = self.host.run(script, check=False, timeout=timeout + 60)
        if result.returncode != 0:
            raise AssertionError(
                f"{self.name}: {key} never became {value!r} within {timeout:.0f} s "
                f"(now {self.read(key) if self.exists() else 'domain gone'!r}); console:\n"
                + self.console()[-2000:]
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        self.wait_for_key("data/test-vm/state", "ready", timeout)

    # -- console ------------------------------------------------------------------------------

    def console(self) -> str:
        """Everything the guest printed so far (all its incarnations under this name)."""
        # After a migration xenconsoled logs the receiving domain under NAME--incoming (it was
        # created with that name and renamed later); the earlier lines stay in NAME's log.
        return self.host.console_log(self.name) + self.host.console_log(f"{self.name}--incoming")

    def console_lines(self) -> list[str]:
        return self.console().splitlines()

    def wait_console(self, pattern: str, count: int = 1, timeout: float = 30.0) -> list[str]:
        """Wait until at least `count` console lines match the regex; return all matching lines."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [line for line in self.console_lines() if re.search(pattern, line)]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: console has {len(matching)} of {count} lines matching "
                    f"{pattern!r} after {timeout:.0f} s:\n" + self.console()[-2000:]
                )
            time.sleep(0.2)

    # -- domain state -------------------------------------------------------------------------

    def wait_gone(self, timeout: float = 60.0) -> None:
        """Wait until no domain of this name exists (after poweroff)."""
        deadline = time.monotonic() + timeout
        while self.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still exists after {timeout:.0f} s")
            time.sleep(0.2)

    def wait_xl_state(self, flag: str, timeout: float = 30.0) -> None:
        """Wait until `xl list` shows the state letter (`c` crashed, `s` shut down, ...)."""
        deadline = time.monotonic() + timeout
        while flag not in self.xl_state():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: state {self.xl_state()!r} lacks {flag!r}")
            time.sleep(0.2)

    def destroy(self) -> None:
        """Destroy the domain if it still exists (teardown; never fails, tries twice)."""
        if self.destroyed:
            return
        for _ in range(2):
            try:
                self.host.run(f"xl destroy {shlex.quote(self.name)}", check=False)
                if not self.exists():
                    break
            except Exception:  # a flaky SSH connection must not abort the teardown
                continue
        self.destroyed = True


def install_kernel(host: LabHost, image: Path) -> str:
    """Copy the kernel image into dom0; returns its path there."""
    host.run(f"mkdir -p {REMOTE_DIR}")
    host.copy_in(image, REMOTE_KERNEL)
    return REMOTE_KERNEL


def create_guest(
    host: LabHost,
    prefix: str,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    cmdline: str = "",
    wait_ready: bool = True,
    kernel: str = REMOTE_KERNEL,
    paused: bool = False,
    mode: str = "pv",
) -> Guest:
    """`xl create` a test guest and (by default) wait until it reports ready in xenstore.

    paused=True: create it paused (`xl create -p`) and return at once; `xl unpause` starts it.
    """
    name = unique_name(prefix)
    config_path = f"{REMOTE_DIR}/{name}.cfg"
    if mode == "pv_in_pvh":
        host.install_shim()
    host.run(
        f"cat > {config_path}",
        input=xl_config(name, kernel=kernel, memory_mib=memory_mib, cmdline=cmdline, mode=mode),
    )
    guest = Guest(host, name, config_path)
    try:
        host.run(f"xl create -q {'-p ' if paused else ''}{config_path}")
    except BaseException:
        # A failed create can still leave a domain behind: never orphan it.
        guest.destroy()
        raise
    if wait_ready and not paused:
        try:
            guest.wait_ready()
        except BaseException:
            guest.destroy()
            raise
    return guest
