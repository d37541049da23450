"""The smoke run: boot test VMs, run the scenario matrix, always destroy what was created."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from . import protocol
from .errors import ClientError, ConnectionLost, SSHError
from .guest import Guest
from .install import upload_kernel
from .reaper import Reaper
from .session import Session
from .toolstack import Vm, VmSpec
from .xl import XlToolstack

SMOKE_MEMORY_MIB = 16
PASS, FAIL, SKIP = "pass", "fail", "skip"


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


@dataclass
class TestVm:
    """A VM the run created, and its current domain."""

    vm: Vm
    guest: Guest
    spec: VmSpec


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

    @property
    def toolstack(self) -> XlToolstack:
        """Scenarios for xl only use its extras (checkpoint, shutdown reasons)."""
        assert isinstance(self.session.toolstack, XlToolstack)
        return self.session.toolstack

    def boot(self, tag: str, cmdline: str = "") -> TestVm:
        """Register and start a fresh VM, wait until the kernel says `ready`."""
        name = f"xtvm-{self.run_id}-{tag}"
        ts = self.session.toolstack
        # xl keeps a shut-down or crashed domain, so its shutdown reason can be checked.
        preserve = "preserve" if ts.kind == "xl" else "destroy"
        spec = VmSpec(
            name=name,
            kernel=self.kernel,
            memory_mib=SMOKE_MEMORY_MIB,
            cmdline=cmdline,
            on_poweroff=preserve,
            on_crash=preserve,
            other_config={"xen-test-vm": self.run_id},
        )
        vm = ts.define(spec)
        with self.lock:
            self.created[name] = TestVm(vm, Guest(self.session.xs, -1), spec)
        self.reaper.register(name, ts.cleanup_commands(vm))
        ts.start(vm)
        test_vm = self.refresh(self.created[name])
        test_vm.guest.wait_state("ready")
        return test_vm

    def refresh(self, test_vm: TestVm) -> TestVm:
        """Follow the VM to its current domain (after reboot, restore, migration)."""
        domid = self.session.toolstack.domid(test_vm.vm)
        if domid is None:
            raise ScenarioFailed(f"{test_vm.vm.name} has no running domain")
        test_vm.guest = Guest(self.session.xs, domid)
        return test_vm

    def wait_new_domain(self, test_vm: TestVm, old_domid: int, timeout: float = 60.0) -> TestVm:
        """Wait (on @introduceDomain) until the VM runs in a domain other than old_domid, ready."""

        def moved() -> int | None:
            domid = self.session.toolstack.domid(test_vm.vm)
            return domid if domid is not None and domid != old_domid else None

        domid = self.session.xs.wait_for(
            ["@introduceDomain", "@releaseDomain"],
            moved,
            timeout,
            f"{test_vm.vm.name} did not come back",
        )
        test_vm.guest = Guest(self.session.xs, domid)
        test_vm.guest.wait_state("ready")
        return test_vm

    def destroy(self, test_vm: TestVm) -> None:
        """Destroy and forget a VM now."""
        try:
            self.session.toolstack.destroy(test_vm.vm)
        finally:
            with self.lock:
                self.created.pop(test_vm.vm.name, None)
            self.reaper.unregister(test_vm.vm.name)

    def shared_vm(self) -> TestVm:
        """The VM that non-destructive guest scenarios share."""
        if self.shared is None:
            self.shared = self.boot("shared")
        return self.shared

    def drop_shared(self) -> None:
        """After a failure the shared VM's state is unknown: replace it next time."""
        if self.shared is not None:
            shared, self.shared = self.shared, None
            with contextlib.suppress(ClientError):
                self.destroy(shared)

    def barrier(self, guest: Guest) -> None:
        """Once the guest answers this, it has handled every earlier xenstore event."""
        guest.instruct(protocol.Instruction(when="now", action="ignore"))


def select(
    scenarios: Iterable[Scenario], kind: str, only: list[str], skip: list[str]
) -> list[Scenario]:
    """Scenarios for this toolstack, filtered by --only / --skip (names or groups, prefixes)."""

    def matches(s: Scenario, patterns: list[str]) -> bool:
        return any(
            s.name == p or s.group == p or s.name.startswith(p.rstrip("*")) for p in patterns
        )

    chosen = [s for s in scenarios if kind in s.backends]
    if only:
        chosen = [s for s in chosen if matches(s, only)]
    return [s for s in chosen if not matches(s, skip)]


def _run_one(ctx: Context, scenario: Scenario) -> Result:
    started = time.monotonic()
    result = Result(scenario.name, scenario.group, scenario.expected, PASS)
    try:
        result.detail = scenario.run(ctx) or ""
    except ScenarioSkipped as exc:
        result.outcome, result.detail = SKIP, str(exc)
    except (ScenarioFailed, ClientError) as exc:
        result.outcome, result.detail = FAIL, " ".join(str(exc).split())
        if scenario.shared_vm:
            ctx.drop_shared()
        if isinstance(exc, ConnectionLost):
            raise
    result.seconds = time.monotonic() - started
    return result


def run_smoke(
    session: Session,
    kernel_file: str,
    scenarios: list[Scenario],
    report: Callable[[Result], None],
    upload_progress: Callable[[int, int], None] | None = None,
) -> list[Result]:
    """Run the scenarios; every VM created is destroyed even on Ctrl-C or a lost connection."""
    from pathlib import Path

    remote_kernel = upload_kernel(session, Path(kernel_file), upload_progress)
    reaper = Reaper(session.host)
    ctx = Context(session, reaper, remote_kernel, reaper.run_id)
    if isinstance(session.toolstack, XlToolstack):
        session.toolstack = XlToolstack(
            session.host, session.toolstack.remote_dir, state_dir=reaper.dir
        )
    results: list[Result] = []
    background = [s for s in scenarios if s.background]
    foreground = [s for s in scenarios if not s.background]
    try:
        futures = [(s, _Background(ctx, s)) for s in background]
        lost: str | None = None
        for scenario in foreground:
            if lost is not None:
                result = Result(scenario.name, scenario.group, scenario.expected, FAIL, lost)
            else:
                try:
                    result = _run_one(ctx, scenario)
                except ConnectionLost as exc:
                    lost = f"not run: {exc}"
                    result = Result(
                        scenario.name, scenario.group, scenario.expected, FAIL, str(exc)
                    )
            results.append(result)
            report(result)
        for scenario, future in futures:
            try:
                result = future.result()
            except ConnectionLost as exc:
                result = Result(scenario.name, scenario.group, scenario.expected, FAIL, str(exc))
            results.append(result)
            report(result)
        return results
    finally:
        _cleanup(ctx)


class _Background:
    """A scenario on a daemon thread: an interrupted run must not wait for it at exit."""

    def __init__(self, ctx: Context, scenario: Scenario) -> None:
        self._result: Result | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(ctx, scenario), daemon=True)
        self._thread.start()

    def _main(self, ctx: Context, scenario: Scenario) -> None:
        try:
            self._result = _run_one(ctx, scenario)
        except BaseException as exc:
            self._error = exc

    def result(self) -> Result:
        """Wait for the scenario (it bounds its own waits)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _cleanup(ctx: Context) -> None:
    """Destroy every VM still registered; on a dead connection the host-side reaper does it."""
    for test_vm in list(ctx.created.values()):
        with contextlib.suppress(ClientError, OSError):
            ctx.destroy(test_vm)
    with contextlib.suppress(SSHError, OSError):
        ctx.reaper.close()


def with_background(scenario: Scenario) -> Scenario:
    """Mark a scenario to run alongside the others."""
    return replace(scenario, background=True)
