"""`xen-test-vm`: install the test kernel on a Xen host, drive it, run the smoke matrix."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__, protocol
from .errors import (
    EXIT_CODES_HELP,
    ClientError,
    ExitCode,
    GuestTimeout,
    UsageError,
    report_error,
)
from .guest import Guest
from .install import install
from .kernel_source import KernelChoice, choose_kernel
from .output import ProgressBar, key_values, print_json
from .scale import MAX_COUNT, SCALE_CMDLINE, SCALE_MEMORY_MIB
from .session import ConnectOptions, Session
from .timeouts import GUEST_TIMEOUT, TOOLSTACK_TIMEOUT, Timeouts
from .toolstack import MIN_MEMORY_MIB, MODES, Vm, default_mode, within

__all__ = ["build_parser", "main", "run", "within"]

PROG = "xen-test-vm"

ENVIRONMENT = """\
environment:
  XEN_TEST_VM_HOST            default for --host
  XEN_TEST_VM_KERNEL          default for --kernel
  XEN_TEST_VM_XAPI_PASSWORD   XAPI password (rather use --xapi-password-file or --ask-xapi-password)
  XEN_TEST_VM_RELEASE_SITE    where released kernels are downloaded from (https://github.com)
  XEN_TEST_VM_RELEASE_REPO    the GitHub repository of the releases (xapi-project/xen-test-vm)
  XEN_TEST_VM_CACHE           downloaded kernels (default: $XDG_CACHE_HOME/xen-test-vm)
  XEN_TEST_VM_TRACE           print every SSH command with its time and exit status on stderr
  XEN_TEST_VM_DEBUG           show the traceback of an internal error
  NO_COLOR                    no colour in the smoke table
"""


def _global_options(parser: argparse.ArgumentParser, *, before_verb: bool) -> None:
    """Options every verb takes, before or after the verb (`xen-test-vm --host h status vm`).

    The copies after the verb default to SUPPRESS so they never overwrite a value given before it.
    """

    def default(value: Any) -> Any:
        return value if before_verb else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output (before or after the verb)")
    group.add_argument(
        "--host",
        default=default(os.environ.get("XEN_TEST_VM_HOST", "")),
        help="[user@]host[:port], ssh://[user@]host[:port], [IPv6]:port, an ssh_config alias, "
        "or 'local' in dom0 (env XEN_TEST_VM_HOST)",
    )
    group.add_argument(
        "--ssh-config",
        type=Path,
        metavar="FILE",
        default=default(None),
        help="ssh_config file (ssh -F)",
    )
    group.add_argument(
        "--accept-new-host-key",
        action="store_true",
        default=default(False),
        help="trust a host key seen for the first time (StrictHostKeyChecking=accept-new)",
    )
    group.add_argument(
        "--remote-dir",
        metavar="DIR",
        default=default("/var/lib/xen-test-vm"),
        help="xl hosts: where kernels and VM configs go",
    )
    group.add_argument(
        "--xapi-user", metavar="USER", default=default("root"), help="XAPI hosts: user name"
    )
    group.add_argument(
        "--xapi-password-file",
        type=Path,
        metavar="FILE",
        default=default(None),
        help="XAPI hosts: read the password from this file (root over dom0's socket needs none)",
    )
    group.add_argument(
        "--ask-xapi-password",
        action="store_true",
        default=default(False),
        help="XAPI hosts: prompt for the password on the terminal",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=default(None),
        metavar="SECONDS",
        help="how long the whole command may take, connecting included (without it: "
        f"{GUEST_TIMEOUT:g} s for each wait for the guest, {TOOLSTACK_TIMEOUT:g} s for a "
        "toolstack operation); exit status 4 when it runs out, 3 if the host could not be "
        "reached in time",
    )


def _mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=MODES,
        help="boot mode of the VMs (xl type, XAPI domain_type; default: pvh on XAPI hosts, "
        "which no longer support PV guests; pv on xl hosts, where it needs no VT-x/SVM)",
    )


def _kernel_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--kernel",
        type=Path,
        default=Path(os.environ["XEN_TEST_VM_KERNEL"])
        if "XEN_TEST_VM_KERNEL" in os.environ
        else None,
        help="the kernel image (default: build/test-vm.xen.gz in a checkout, else the release "
        f"{__version__} downloaded and verified; env XEN_TEST_VM_KERNEL)",
    )
    which.add_argument(
        "--release",
        metavar="VERSION",
        help="download this released kernel (checked against its SHA256SUMS, cached)",
    )


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """All verbs, named as xl and xe name them."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        epilog=f"{ENVIRONMENT}\n{EXIT_CODES_HELP}",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, before_verb=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")

    def verb(name: str, help: str, *, vm: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"{ENVIRONMENT}\n{EXIT_CODES_HELP}",
            formatter_class=_Formatter,
        )
        if vm:
            p.add_argument("name", metavar="NAME", help="the VM's name")
        _global_options(p, before_verb=False)
        return p

    p = verb("install", "copy the kernel, register a VM (re-running updates it)", vm=False)
    _kernel_options(p)
    p.add_argument("--name", default="xen-test-vm", help="VM name (default xen-test-vm)")
    p.add_argument("--memory", type=int, default=32, help="MiB (default 32)")
    p.add_argument("--cmdline", default="", help="kernel command line, e.g. heartbeat=0")
    _mode_option(p)
    p.add_argument(
        "--start", action="store_true", help="boot it and wait (--timeout) until it is ready"
    )

    verb("start", "boot a registered VM, wait until the kernel is ready")
    verb("status", "power state, data/test-vm/ and the advertised features")

    p = verb("send", "write control/testing, wait for the guest's acknowledgement")
    p.add_argument(
        "message", nargs="?", help="raw message, sent as given (default: built from options)"
    )
    p.add_argument("--when", choices=protocol.WHEN)
    p.add_argument("--action", choices=protocol.ACTIONS)
    p.add_argument("--ack", help="ok, none, delete or any other string (with --when onshutdown)")
    timed = p.add_argument_group("timed behaviour (PROTOCOL.md section 7, milliseconds)")
    timed.add_argument(
        "--hang-ms",
        metavar="MS",
        help="when it fires, stop answering xenstore and the console this long (or 'forever')",
    )
    timed.add_argument(
        "--ack-delay-ms", type=int, default=0, metavar="MS", help="acknowledge this much later"
    )
    timed.add_argument(
        "--action-delay-ms",
        type=int,
        default=0,
        metavar="MS",
        help="act this long after the acknowledgement (now: after reading the message)",
    )
    load = p.add_argument_group("xenstore pressure (PROTOCOL.md section 8)")
    load.add_argument(
        "--xs-nodes", type=int, metavar="N", help="hold N nodes under data/test-vm/pressure/n"
    )
    load.add_argument("--xs-watches", type=int, metavar="N", help="hold N watches (0 clears)")
    balloon = p.add_argument_group("balloon (PROTOCOL.md section 9)")
    balloon.add_argument(
        "--balloon-percent",
        type=int,
        metavar="P",
        help="give back only P%% of what memory/target asks (0: ignore it; 100: obey, the default)",
    )

    p = verb("request", "write a word to control/shutdown and report how the guest answered it")
    p.add_argument(
        "word",
        nargs="?",
        default="poweroff",
        help="poweroff (default), halt, reboot, crash, suspend or any other word",
    )

    p = verb("shutdown", "shut the VM down through the toolstack (xl shutdown -w, vm-shutdown)")
    p.add_argument(
        "--force", action="store_true", help="destroy the domain without asking the guest"
    )
    p = verb("reboot", "reboot through the toolstack and wait for the new domain")
    p.add_argument(
        "--force", action="store_true", help="hard reboot: destroy and start without asking"
    )
    verb("suspend", "suspend to disk (xl save, vm-suspend)")
    verb("resume", "resume a suspended VM (xl restore, vm-resume)")
    verb("checkpoint", "save the state and let the guest carry on (xl save -c)")
    p = verb("migrate", "live-migrate (to this host when no destination is given)")
    p.add_argument("--destination", help="pool member or host to migrate to")
    verb("destroy", "destroy the domain and unregister the VM")

    p = verb("smoke", "run the scenario matrix (creates and destroys its own VMs)", vm=False)
    _kernel_options(p)
    _mode_option(p)
    p.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="scenario or group (repeatable)"
    )
    p.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="scenario or group (repeatable)"
    )
    p.add_argument("--junit", type=Path, help="also write JUnit XML here")
    p.add_argument(
        "--list", action="store_true", help="list the selected scenarios and exit (no host needed)"
    )
    p.add_argument(
        "--jobs", type=int, default=3, help="scenarios with their own VM run this many at a time"
    )
    p.add_argument(
        "--destination",
        help="another host (xl: a name this host's dom0 and your ssh both know) or pool member "
        "(XAPI) for the migrate-to-destination row",
    )
    p = verb(
        "scale",
        "load generator: start COUNT test VMs, wait until each is ready, shut them all down "
        "cleanly; latency percentiles and throughput (every VM it creates is destroyed)",
        vm=False,
    )
    _kernel_options(p)
    _mode_option(p)
    p.add_argument("--count", type=int, required=True, help="how many VMs")
    p.add_argument(
        "--concurrency", type=int, default=4, help="VMs started (and shut down) at a time (4)"
    )
    p.add_argument(
        "--memory", type=int, default=SCALE_MEMORY_MIB, help=f"MiB each ({SCALE_MEMORY_MIB})"
    )
    p.add_argument(
        "--cmdline",
        default=SCALE_CMDLINE,
        help=f"kernel command line of every VM (default {SCALE_CMDLINE}: idle guests, no console "
        "tick each second)",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=GUEST_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each VM may take from its start until it is ready ({GUEST_TIMEOUT:g})",
    )
    return parser


def _xapi_password(args: argparse.Namespace) -> str:
    if args.xapi_password_file is not None:
        try:
            return str(args.xapi_password_file.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise UsageError(
                f"cannot read --xapi-password-file {args.xapi_password_file}: {exc.strerror or exc}"
            ) from None
    if args.ask_xapi_password:
        if not sys.stdin.isatty():
            raise UsageError("--ask-xapi-password needs a terminal; use --xapi-password-file")
        return getpass.getpass(f"XAPI password for {args.xapi_user}: ")
    return os.environ.get("XEN_TEST_VM_XAPI_PASSWORD", "")


def _options(args: argparse.Namespace) -> ConnectOptions:
    return ConnectOptions(
        host=args.host,
        ssh_config=args.ssh_config,
        accept_new_host_key=args.accept_new_host_key,
        remote_dir=args.remote_dir,
        xapi_user=args.xapi_user,
        xapi_password=_xapi_password(args),
    )


def _emit(args: argparse.Namespace, data: dict[str, Any]) -> None:
    if args.json:
        print_json(data)
    else:
        print(key_values(data))


def cmd_install(
    args: argparse.Namespace, session: Session, kernel: KernelChoice, timeouts: Timeouts
) -> int:
    result = install(
        session,
        kernel.path,
        args.name,
        memory_mib=args.memory,
        cmdline=args.cmdline,
        start=args.start,
        mode=args.mode,
        progress=None if args.json else ProgressBar.on_terminal("upload"),
        timeouts=timeouts,
    )
    _emit(args, {**result, "kernel_source": kernel.source})
    return ExitCode.OK


def cmd_start(args: argparse.Namespace, session: Session, timeouts: Timeouts) -> int:
    def needs_start() -> tuple[Vm, bool]:
        vm = session.find_vm(args.name)
        return vm, session.toolstack.domid(vm) is None

    vm, stopped = timeouts.step(f"finding {args.name!r}", needs_start)
    if stopped:
        timeouts.toolstack(f"start of {vm.name!r}", lambda: session.toolstack.start(vm))
    guest = timeouts.step(f"finding the domain of {vm.name!r}", lambda: session.guest(vm))
    status = guest.wait_state("ready", timeouts.guest())
    _emit(args, status.as_dict())
    return ExitCode.OK


def send_message(args: argparse.Namespace) -> str:
    """The control/testing message from the arguments (checked before connecting)."""
    timed = args.hang_ms is not None or args.ack_delay_ms or args.action_delay_ms
    load = (args.xs_nodes, args.xs_watches, args.balloon_percent) != (None, None, None)
    if args.message is not None:
        if args.when or args.action or args.ack or timed or load:
            raise UsageError("give either a raw message or the options that build one, not both")
        return str(args.message)
    if not (args.when and args.action):
        raise UsageError("give a raw message, or --when and --action (and --ack with onshutdown)")
    hang: int | str = 0
    if args.hang_ms is not None:
        hang = args.hang_ms if args.hang_ms == protocol.FOREVER else _whole_ms(args.hang_ms)
    try:
        return protocol.Instruction(
            args.when,
            args.action,
            args.ack,
            hang_ms=hang,
            ack_delay_ms=args.ack_delay_ms,
            action_delay_ms=args.action_delay_ms,
            xs_nodes=args.xs_nodes,
            xs_watches=args.xs_watches,
            balloon_percent=args.balloon_percent,
        ).to_json()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _whole_ms(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"--hang-ms must be a whole number of milliseconds or 'forever': {text!r}")
    return int(text)


def _guest_of(args: argparse.Namespace, session: Session, timeouts: Timeouts) -> tuple[Vm, Guest]:
    def find() -> tuple[Vm, Guest]:
        vm = session.find_vm(args.name)
        return vm, session.guest(vm)

    return timeouts.step(f"finding the domain of {args.name!r}", find)


def cmd_send(args: argparse.Namespace, session: Session, timeouts: Timeouts) -> int:
    message = send_message(args)
    _, guest = _guest_of(args, session, timeouts)
    ending = protocol.ends_domain_at_once(message)
    there = guest.send_testing(message, timeouts.guest(), gone_answers=ending)
    # A `now` crash or poweroff may take the domain before its ack or status can be read.
    if not there or (ending and not guest.exists()):
        _emit(args, {"sent": message, "domid": guest.domid, "state": "gone"})
        return ExitCode.OK
    status = timeouts.step("reading the guest's status", guest.status)
    _emit(args, {"sent": message, **status.as_dict()})
    return ExitCode.OK


def cmd_request(args: argparse.Namespace, session: Session, timeouts: Timeouts) -> int:
    vm, guest = _guest_of(args, session, timeouts)
    timeout = timeouts.guest()
    try:
        answer = guest.request(args.word, timeout)
    except GuestTimeout:
        # The whole --timeout is what the user gave and knows, not what connecting left of it.
        said = timeouts.budget if timeouts.budget is not None else timeout
        raise GuestTimeout(
            f"the guest did not acknowledge {args.word!r} within {said:g} s "
            f"(control/shutdown still holds it)"
        ) from None
    _emit(
        args,
        {"name": vm.name, "request": args.word, "answer": answer.outcome, "value": answer.value},
    )
    return ExitCode.OK


def _toolstack_verb(args: argparse.Namespace, session: Session, timeouts: Timeouts) -> int:
    vm = timeouts.step(f"finding {args.name!r}", lambda: session.find_vm(args.name))
    ts = session.toolstack
    force = getattr(args, "force", False)

    def hard_reboot() -> None:
        ts.hard_shutdown(vm)
        ts.start(vm)

    operations: dict[str, Callable[[], None]] = {
        "shutdown": (lambda: ts.hard_shutdown(vm)) if force else (lambda: ts.clean_shutdown(vm)),
        "reboot": hard_reboot if force else (lambda: ts.clean_reboot(vm)),
        "suspend": lambda: ts.suspend(vm),
        "resume": lambda: ts.resume(vm),
        "checkpoint": lambda: ts.checkpoint(vm),
        "migrate": lambda: ts.migrate(vm, args.destination),
    }
    timeouts.toolstack(f"{args.command} of {vm.name!r}", operations[args.command])
    state = timeouts.step(
        f"reading the state of {vm.name!r}", lambda: (ts.power_state(vm), ts.domid(vm))
    )
    _emit(
        args,
        {
            "name": vm.name,
            "operation": args.command + (" --force" if force else ""),
            "power_state": state[0],
            "domid": state[1],
        },
    )
    return ExitCode.OK


def cmd_status(args: argparse.Namespace, session: Session, timeouts: Timeouts) -> int:
    def read() -> dict[str, Any]:
        vm = session.find_vm(args.name)
        data: dict[str, Any] = {
            "name": vm.name,
            "ref": vm.ref,
            "uuid": vm.uuid,
            "toolstack": session.kind,
            "power_state": session.toolstack.power_state(vm),
        }
        domid = session.toolstack.local_domid(vm)
        if domid is not None:
            status = Guest(session.xs, domid).status()
            data |= status.as_dict()
            del data["features"]
            data |= {f"control/{k}": v for k, v in status.features.items()}
        return data

    _emit(args, timeouts.step(f"status of {args.name!r}", read))
    return ExitCode.OK


def cmd_destroy(args: argparse.Namespace, session: Session, timeouts: Timeouts) -> int:
    vm = timeouts.step(f"finding {args.name!r}", lambda: session.find_vm(args.name))
    timeouts.toolstack(f"destroy of {vm.name!r}", lambda: session.toolstack.destroy(vm))
    _emit(args, {"name": vm.name, "destroyed": True})
    return ExitCode.OK


def smoke_selection(args: argparse.Namespace, kind: str | None) -> list[Any]:
    """The scenarios --only/--skip choose (every name checked); kind None: any toolstack."""
    from .scenarios import ALL
    from .smoke import check_patterns, select

    check_patterns(ALL, args.only, "--only")
    check_patterns(ALL, args.skip, "--skip")
    scenarios = select(ALL, kind, args.only, args.skip)
    if not scenarios:
        raise UsageError("--only/--skip left no scenarios to run")
    return scenarios


def cmd_smoke(args: argparse.Namespace, session: Session, kernel: KernelChoice) -> int:
    from .report import LiveTable, as_json, exit_code, write_junit
    from .smoke import run_smoke

    scenarios = smoke_selection(args, session.kind)
    table = LiveTable(enabled=not args.json)
    table.header()
    started = time.monotonic()
    results = run_smoke(
        session,
        str(kernel.path),
        scenarios,
        table,
        None if args.json else ProgressBar.on_terminal("upload"),
        jobs=args.jobs,
        mode=args.mode,
        destination=args.destination,
    )
    seconds = time.monotonic() - started
    table.summary(results, seconds)
    mode = args.mode or default_mode(session.kind)
    if args.json:
        print_json(as_json(results, session.host.name, session.kind, seconds, mode))
    if args.junit:
        write_junit(
            args.junit, results, session.host.name, seconds, mode=mode, toolstack=session.kind
        )
    return exit_code(results)


def _list_scenarios(args: argparse.Namespace) -> int:
    rows = [
        {"name": s.name, "group": s.group, "backends": sorted(s.backends), "expected": s.expected}
        for s in smoke_selection(args, None)
    ]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(
                f"{row['name']:<28} {row['group']:<9} {','.join(row['backends']):<8} "
                f"{row['expected']}"
            )
    return ExitCode.OK


NO_TIMEOUT = {
    "smoke": "every scenario has its own deadlines (the toolstack's and PROTOCOL.md's)",
    "scale": "each VM has its own deadlines (--ready-timeout and the toolstack's)",
}


def check_scale_options(args: argparse.Namespace) -> None:
    """Bad numbers are refused before connecting."""
    if not 1 <= args.count <= MAX_COUNT:
        raise UsageError(f"--count must be between 1 and {MAX_COUNT}")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.memory < MIN_MEMORY_MIB:
        raise UsageError(f"--memory must be at least {MIN_MEMORY_MIB} MiB")
    if not args.ready_timeout > 0:
        raise UsageError("--ready-timeout must be a positive number of seconds")


def cmd_scale(args: argparse.Namespace, session: Session, kernel: KernelChoice) -> int:
    from .scale import as_json, passed, run_scale
    from .scale_report import human_report

    bars: dict[str, ProgressBar] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if not args.json:
            bar = bars.setdefault(phase, ProgressBar.on_terminal(phase, total, unit="items"))
            bar(done, total)

    run = run_scale(
        session,
        kernel.path,
        args.count,
        concurrency=args.concurrency,
        memory_mib=args.memory,
        mode=args.mode,
        cmdline=args.cmdline,
        ready_timeout=args.ready_timeout,
        upload_progress=None if args.json else ProgressBar.on_terminal("upload"),
        progress=progress,
    )
    report = as_json(run)
    if args.json:
        print_json(report)
    else:
        print(human_report(report))
    if report["left_behind"]:
        report_error(PROG, f"VMs left behind on {session.host.name}: {report['left_behind']}")
    elif not passed(report):
        report_error(
            PROG,
            f"{report['failed']} of {report['count']} VMs failed (first: "
            f"{report['failures'][0]['name']}, {report['failures'][0]['phase']}: "
            f"{report['failures'][0]['error']})"
            if report["failures"]
            else "not every VM was shut down",
        )
    return ExitCode.OK if passed(report) else ExitCode.FAILED


SESSION_COMMANDS: dict[str, Callable[[argparse.Namespace, Session, Timeouts], int]] = {
    "start": cmd_start,
    "status": cmd_status,
    "send": cmd_send,
    "request": cmd_request,
    "shutdown": _toolstack_verb,
    "reboot": _toolstack_verb,
    "suspend": _toolstack_verb,
    "resume": _toolstack_verb,
    "checkpoint": _toolstack_verb,
    "migrate": _toolstack_verb,
    "destroy": cmd_destroy,
}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(argv: Sequence[str] | None = None) -> int:
    """Parse, check everything that needs no host, connect, dispatch."""
    args = build_parser().parse_args(argv)
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.command in NO_TIMEOUT and args.timeout is not None:
        raise UsageError(f"{args.command} does not take --timeout: {NO_TIMEOUT[args.command]}")
    if args.command == "scale":
        check_scale_options(args)
    if args.command == "smoke":
        if args.list:
            return _list_scenarios(args)
        smoke_selection(args, None)
    if args.command == "send":
        send_message(args)
    options = _options(args)
    # From here on the command's --timeout runs: the password prompt above is not the host's time.
    timeouts = Timeouts(args.timeout)
    if args.command in ("smoke", "scale"):
        if not options.host:
            raise UsageError("no host given (--host HOST or XEN_TEST_VM_HOST)")
        kernel = choose_kernel(args.kernel, args.release, quiet=args.json)
        with Session(options) as session:
            if args.command == "scale":
                return cmd_scale(args, session, kernel)
            return cmd_smoke(args, session, kernel)
    if args.command == "install":
        if not options.host:
            raise UsageError("no host given (--host HOST or XEN_TEST_VM_HOST)")
        kernel = timeouts.step(
            "getting the kernel", lambda: choose_kernel(args.kernel, args.release, quiet=args.json)
        )
        with Session(options, timeouts) as session:
            return cmd_install(args, session, kernel, timeouts)
    with Session(options, timeouts) as session:
        return SESSION_COMMANDS[args.command](args, session, timeouts)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: one-line errors on stderr, never a traceback."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(argv)
    except ClientError as exc:
        report_error(PROG, exc.one_line())
        return exc.exit_code
    except KeyboardInterrupt:
        report_error(PROG, "interrupted; the VMs this run created were destroyed")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.FAILED
    except Exception as exc:  # a bug, but still no traceback for the user
        if os.environ.get("XEN_TEST_VM_DEBUG"):
            raise
        report_error(PROG, f"internal error: {type(exc).__name__}: {exc}")
        return ExitCode.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
