"""The smoke run: boot test VMs, run the scenario matrix, always destroy what was created."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol
from .errors import (
    ClientError,
    ConnectionLost,
    GuestTimeout,
    SSHError,
    ToolstackError,
    UsageError,
)
from .guest import Guest
from .install import upload_run_kernel
from .reaper import Reaper
from .session import Session, member_options
from .toolstack import ConsoleCapture, Vm, VmSpec, default_mode

SMOKE_MEMORY_MIB = 16
# The reaper's script that puts console logging back if the client goes away.
CONSOLES_KEY = "consoles"
# FAIL: the host or guest misbehaved; ERROR: the harness could not run the scenario (SSH,
# xenstore connection, a bug), as XTF's runner tells a failure from an error.
PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"


class ScenarioFailed(Exception):
    """The observed outcome differs from the expected one."""


class ScenarioSkipped(Exception):
    """The scenario does not apply to this host."""


def expect(condition: bool, message: str) -> None:
    """Fail the scenario with message unless condition holds."""
    if not condition:
        raise ScenarioFailed(message)


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix: what is done, what must be observed."""

    name: str
    group: str  # guest | toolstack
    expected: str
    run: Callable[[Context], str | None]
    backends: frozenset[str] = frozenset({"xl", "xapi"})
    shared_vm: bool = False  # runs on the shared VM and leaves it ready and unarmed
    background: bool = False  # slow (toolstack timeouts): runs alongside the others


@dataclass
class Result:
    """What happened in one scenario."""

    name: str
    group: str
    expected: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    # A failed row's guests: what each of their domains printed (domid -> lines).
    console: dict[int, list[str]] = field(default_factory=dict)


@dataclass
class TestVm:
    """A VM the run created, and its current domain."""

    vm: Vm
    guest: Guest
    spec: VmSpec
    domids: list[int] = field(default_factory=list)  # every domain it ran in, in order


@dataclass
class Context:
    """What scenarios use: the session, and VMs that are destroyed at the end."""

    session: Session
    reaper: Reaper
    kernel: str
    run_id: str
    created: dict[str, TestVm] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    shared: TestVm | None = None
    mode: str = "pv"
    # The migrate-to-destination row's target (--destination), if any.
    destination: str | None = None
    consoles: ConsoleCapture | None = None
    # Per thread: the VMs the scenario running in it uses (their consoles go with its result).
    row: threading.local = field(default_factory=threading.local)
    gone: list[int] = field(default_factory=list)  # domids of VMs no longer in `created`

    def boot(self, tag: str, cmdline: str = "", paused: bool = False) -> TestVm:
        """Register and start a fresh VM, wait until the kernel says `ready` (paused: built
        but not run, so nothing to wait for)."""
        name = f"xtvm-{self.run_id}-{tag}"
        ts = self.session.toolstack
        spec = VmSpec(
            name=name,
            kernel=self.kernel,
            memory_mib=SMOKE_MEMORY_MIB,
            cmdline=cmdline,
            on_poweroff=ts.smoke_on_poweroff,
            on_crash=ts.smoke_on_crash,
            other_config={"xen-test-vm": self.run_id},
            mode=self.mode,
        )
        vm = ts.define_guarded(spec, lambda commands: self.reaper.register(name, commands))
        with self.lock:
            self.created[name] = TestVm(vm, Guest(self.session.xs, -1), spec)
        self.uses(self.created[name])
        ts.start(vm, paused=paused)
        test_vm = self.refresh(self.created[name])
        if not paused:
            test_vm.guest.wait_state("ready")
        return test_vm

    def uses(self, test_vm: TestVm) -> None:
        """The scenario running in this thread uses the VM: a failure shows its consoles."""
        if not hasattr(self.row, "vms"):
            self.row.vms = []
        if all(vm is not test_vm for vm in self.row.vms):
            self.row.vms.append(test_vm)

    def _follow(self, test_vm: TestVm, domid: int) -> None:
        test_vm.guest = Guest(self.session.xs, domid)
        if domid not in test_vm.domids:
            test_vm.domids.append(domid)

    def refresh(self, test_vm: TestVm) -> TestVm:
        """Follow the VM to its current domain (after reboot, restore, migration)."""
        domid = self.session.toolstack.local_domid(test_vm.vm)
        if domid is None:
            raise ScenarioFailed(f"{test_vm.vm.name} has no running domain")
        self._follow(test_vm, domid)
        return test_vm

    def wait_new_domain(self, test_vm: TestVm, old_domid: int, timeout: float = 60.0) -> TestVm:
        """Wait until the VM runs in a domain other than old_domid (the toolstack says so: XAPI's
        VM record, xl's xenstore), then until the kernel there says ready."""
        domid = self.session.toolstack.wait_new_domid(test_vm.vm, old_domid, timeout)
        self._follow(test_vm, domid)
        test_vm.guest.wait_state("ready")
        return test_vm

    def destroy(self, test_vm: TestVm) -> None:
        """Destroy and forget a VM now (on failure the reaper keeps its cleanup script)."""
        self.session.toolstack.destroy(test_vm.vm)
        self.forget(test_vm)

    def forget(self, test_vm: TestVm) -> None:
        """The VM is no longer this host's to clean up (destroyed, or moved to another host)."""
        with self.lock:
            self.created.pop(test_vm.vm.name, None)
            self.gone.extend(test_vm.domids)
        self.reaper.unregister(test_vm.vm.name)

    def console_of(self, vms: list[TestVm]) -> dict[int, list[str]]:
        """What the domains of these VMs printed, if this host keeps guests' consoles."""
        if self.consoles is None:
            return {}
        return {domid: self.consoles.lines(domid) for tv in vms for domid in tv.domids}

    def shared_vm(self) -> TestVm:
        """The VM that non-destructive guest scenarios share."""
        if self.shared is None:
            self.shared = self.boot("shared")
        self.uses(self.shared)
        return self.shared

    def drop_shared(self) -> None:
        """After a failure the shared VM's state is unknown: replace it next time."""
        if self.shared is not None:
            shared, self.shared = self.shared, None
            with contextlib.suppress(ClientError):
                self.destroy(shared)

    def open_session(self, host: str) -> Session:
        """Another host, reached as --host is (same ssh config, user and options)."""
        return Session(member_options(self.session.options, host))

    def barrier(self, guest: Guest) -> None:
        """Once the guest answers this, it has handled every earlier xenstore event."""
        guest.instruct(protocol.Instruction(when="now", action="ignore"))


def _matches(s: Scenario, patterns: list[str]) -> bool:
    return any(s.name == p or s.group == p or s.name.startswith(p.rstrip("*")) for p in patterns)


def check_patterns(scenarios: Iterable[Scenario], patterns: list[str], option: str) -> None:
    """Every --only/--skip name must pick at least one scenario (checked before connecting)."""
    known = list(scenarios)
    unknown = [p for p in patterns if not any(_matches(s, [p]) for s in known)]
    if unknown:
        groups = sorted({s.group for s in known})
        raise UsageError(
            f"{option}: no scenario or group named {', '.join(map(repr, unknown))} "
            f"(groups: {', '.join(groups)}; `smoke --list` shows the names)"
        )


def select(
    scenarios: Iterable[Scenario], kind: str | None, only: list[str], skip: list[str]
) -> list[Scenario]:
    """Scenarios for this toolstack (any, if None), filtered by --only / --skip.

    Patterns are names, groups, or name prefixes ending in '*'.
    """
    chosen = [s for s in scenarios if kind is None or kind in s.backends]
    if only:
        chosen = [s for s in chosen if _matches(s, only)]
    return [s for s in chosen if not _matches(s, skip)]


def outcome_of(exc: BaseException) -> str:
    """FAIL when the host or guest behaved wrongly, ERROR when the harness broke."""
    if isinstance(exc, ScenarioFailed | GuestTimeout | ToolstackError):
        return FAIL
    return ERROR


def _run_one(ctx: Context, scenario: Scenario) -> Result:
    started = time.monotonic()
    result = Result(scenario.name, scenario.group, scenario.expected, PASS)
    ctx.row.vms = []
    try:
        result.detail = scenario.run(ctx) or ""
    except ScenarioSkipped as exc:
        result.outcome, result.detail = SKIP, str(exc)
    except (ScenarioFailed, ClientError) as exc:
        result.outcome, result.detail = outcome_of(exc), " ".join(str(exc).split())
        if isinstance(exc, ConnectionLost):
            raise
        # Before the shared VM is dropped: its domain's console is the one that tells.
        with contextlib.suppress(ClientError, OSError):
            result.console = ctx.console_of(ctx.row.vms)
        if scenario.shared_vm:
            ctx.drop_shared()
    result.seconds = time.monotonic() - started
    return result


def run_smoke(
    session: Session,
    kernel_file: str,
    scenarios: list[Scenario],
    report: Callable[[Result], None],
    upload_progress: Callable[[int, int], None] | None = None,
    jobs: int = 3,
    mode: str | None = None,
    destination: str | None = None,
) -> list[Result]:
    """Run the scenarios; every VM created is destroyed even on Ctrl-C or a lost connection.

    Shared-VM scenarios run one after another; the others run `jobs` at a time, the slow
    (background) ones alongside. Results are reported as they finish, returned in matrix order.
    """
    reaper = Reaper(session.host)
    remote_kernel = upload_run_kernel(session, reaper, Path(kernel_file), upload_progress, "smoke")
    ctx = Context(
        session,
        reaper,
        remote_kernel,
        reaper.run_id,
        mode=mode or default_mode(session.kind),
        destination=destination,
    )
    session.toolstack = session.toolstack.for_run(reaper.dir)
    try:
        ctx.consoles = session.toolstack.capture_consoles(session.xs)
        if ctx.consoles is not None:
            reaper.register(CONSOLES_KEY, ctx.consoles.undo_commands())
    except BaseException:
        _cleanup(ctx)
        raise
    finished: queue.Queue[Result] = queue.Queue()
    lost: list[str] = []
    work: queue.Queue[Scenario] = queue.Queue()
    for scenario in scenarios:
        if not scenario.shared_vm and not scenario.background:
            work.put(scenario)

    def run_guarded(scenario: Scenario) -> None:
        if lost:
            result = Result(
                scenario.name, scenario.group, scenario.expected, ERROR, f"not run: {lost[0]}"
            )
        else:
            try:
                result = _run_one(ctx, scenario)
            except ConnectionLost as exc:
                lost.append(str(exc))
                result = Result(scenario.name, scenario.group, scenario.expected, ERROR, str(exc))
            except BaseException as exc:  # a bug in a scenario must not hang the run
                result = Result(scenario.name, scenario.group, scenario.expected, ERROR, repr(exc))
        finished.put(result)

    def shared_lane() -> None:
        for scenario in (s for s in scenarios if s.shared_vm):
            run_guarded(scenario)
        ctx.drop_shared()

    def worker() -> None:
        while True:
            try:
                scenario = work.get_nowait()
            except queue.Empty:
                return
            run_guarded(scenario)

    threads = [
        threading.Thread(target=run_guarded, args=(s,), daemon=True)
        for s in scenarios
        if s.background
    ]
    threads.append(threading.Thread(target=shared_lane, daemon=True))
    threads += [threading.Thread(target=worker, daemon=True) for _ in range(max(1, jobs))]
    try:
        for thread in threads:
            thread.start()
        results = []
        for _ in scenarios:
            results.append(finished.get())
            report(results[-1])
        order = {s.name: i for i, s in enumerate(scenarios)}
        results.sort(key=lambda r: order[r.name])
    finally:
        remaining = _cleanup(ctx)
    if remaining:
        result = Result(
            "cleanup", "run", "every VM the run created is gone", FAIL, f"left: {remaining}"
        )
        results.append(result)
        report(result)
    return results


def _cleanup(ctx: Context) -> list[str]:
    """Destroy every VM still registered; the host-side reaper retries what fails here.

    Returns the names of VMs that still exist afterwards (an error: nothing may stay behind).
    """
    leftovers = list(ctx.created.values())
    for test_vm in leftovers:
        with contextlib.suppress(ClientError, OSError):
            ctx.destroy(test_vm)
    # Once every domain is gone: console logging back as it was, the run's logs removed.
    if ctx.consoles is not None:
        with contextlib.suppress(ClientError, OSError):
            ctx.consoles.close(sorted({*ctx.gone, *(d for tv in leftovers for d in tv.domids)}))
            ctx.reaper.unregister(CONSOLES_KEY)
    # The reaper removes the run's kernel (and anything not destroyed above) when it closes.
    with contextlib.suppress(SSHError, OSError):
        ctx.reaper.close()
    remaining = []
    for test_vm in leftovers:
        try:
            if ctx.session.toolstack.exists(test_vm.vm):
                remaining.append(test_vm.vm.name)
        except (ClientError, OSError):
            remaining.append(test_vm.vm.name)
    return remaining
