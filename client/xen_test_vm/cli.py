"""`xen-test-vm`: install the test kernel on a Xen host, drive it, run the smoke matrix."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__, protocol
from .errors import ClientError, GuestTimeout, UsageError
from .guest import Guest
from .install import check_kernel, install
from .output import ProgressBar, key_values, print_json
from .session import ConnectOptions, Session
from .toolstack import Vm

PROG = "xen-test-vm"
DEFAULT_KERNEL = Path("build") / "test-vm.xen.gz"
INTERRUPTED = 130
INTERNAL = 70


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=os.environ.get("XEN_TEST_VM_HOST", ""),
        help="[user@]host or ssh_config alias; 'local' when running in dom0",
    )
    parser.add_argument("--ssh-config", type=Path, help="ssh_config file (ssh -F)")
    parser.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust a host key seen for the first time (StrictHostKeyChecking=accept-new)",
    )
    parser.add_argument(
        "--remote-dir", default="/var/lib/xen-test-vm", help="xl hosts: kernel and configs"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the guest")


def build_parser() -> argparse.ArgumentParser:
    """All subcommands."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    _common(common)

    p = sub.add_parser(
        "install", parents=[common], help="copy the kernel, register a VM (re-run safe)"
    )
    p.add_argument(
        "--kernel", type=Path, default=Path(os.environ.get("XEN_TEST_VM_KERNEL", DEFAULT_KERNEL))
    )
    p.add_argument("--name", default="xen-test-vm", help="VM name")
    p.add_argument("--memory", type=int, default=32, help="MiB")
    p.add_argument("--cmdline", default="", help="kernel command line, e.g. heartbeat=0")
    p.add_argument("--start", action="store_true", help="boot it and wait until it is ready")

    p = sub.add_parser("start", parents=[common], help="boot a registered VM, wait until ready")
    p.add_argument("name")

    p = sub.add_parser("send", parents=[common], help="write control/testing, wait for the ack")
    p.add_argument("name")
    p.add_argument(
        "message", nargs="?", help="raw message, sent as given (default: built from options)"
    )
    p.add_argument("--when", choices=protocol.WHEN)
    p.add_argument("--action", choices=protocol.ACTIONS)
    p.add_argument("--ack", help="ok, none, delete or any other string (with --when onshutdown)")

    p = sub.add_parser(
        "shutdown", parents=[common], help="ask the guest or the toolstack to stop it"
    )
    p.add_argument("name")
    p.add_argument(
        "request",
        nargs="?",
        default="poweroff",
        help="word written to control/shutdown (poweroff, halt, reboot, crash, suspend, ...)",
    )
    p.add_argument(
        "--toolstack",
        choices=("clean", "hard", "reboot", "suspend", "resume", "migrate"),
        help="use the toolstack operation instead of writing control/shutdown",
    )
    p.add_argument("--destination", help="with --toolstack migrate: pool member or host")

    p = sub.add_parser("status", parents=[common], help="power state and data/test-vm/")
    p.add_argument("name")

    p = sub.add_parser("destroy", parents=[common], help="hard shutdown and unregister a VM")
    p.add_argument("name")

    p = sub.add_parser(
        "smoke", parents=[common], help="run the scenario matrix (creates and destroys VMs)"
    )
    p.add_argument(
        "--kernel", type=Path, default=Path(os.environ.get("XEN_TEST_VM_KERNEL", DEFAULT_KERNEL))
    )
    p.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="scenario or group (repeatable)"
    )
    p.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="scenario or group (repeatable)"
    )
    p.add_argument("--junit", type=Path, help="also write JUnit XML here")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument(
        "--jobs", type=int, default=3, help="scenarios with their own VM run this many at a time"
    )
    return parser


def _options(args: argparse.Namespace) -> ConnectOptions:
    return ConnectOptions(
        host=args.host,
        ssh_config=args.ssh_config,
        accept_new_host_key=args.accept_new_host_key,
        remote_dir=args.remote_dir,
    )


def _emit(args: argparse.Namespace, data: dict[str, Any]) -> None:
    if args.json:
        print_json(data)
    else:
        print(key_values(data))


def _running_guest(session: Session, name: str) -> tuple[Vm, Guest]:
    vm = session.find_vm(name)
    return vm, session.guest(vm)


def cmd_install(args: argparse.Namespace, session: Session) -> int:
    result = install(
        session,
        args.kernel,
        args.name,
        memory_mib=args.memory,
        cmdline=args.cmdline,
        start=args.start,
        progress=None if args.json else ProgressBar("upload"),
    )
    _emit(args, result)
    return 0


def cmd_start(args: argparse.Namespace, session: Session) -> int:
    vm = session.find_vm(args.name)
    if session.toolstack.domid(vm) is None:
        session.toolstack.start(vm)
    guest = session.guest(vm)
    _emit(args, guest.wait_state("ready", args.timeout).as_dict())
    return 0


def send_message(args: argparse.Namespace) -> str:
    """The control/testing message from the arguments (checked before connecting)."""
    if args.message is not None:
        if args.when or args.action or args.ack:
            raise UsageError("give either a raw message or --when/--action/--ack, not both")
        return str(args.message)
    if not (args.when and args.action):
        raise UsageError("give a raw message, or --when and --action (and --ack with onshutdown)")
    try:
        return protocol.Instruction(args.when, args.action, args.ack).to_json()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_send(args: argparse.Namespace, session: Session) -> int:
    message = send_message(args)
    _, guest = _running_guest(session, args.name)
    guest.send_testing(message, args.timeout)
    _emit(args, {"sent": message, **guest.status().as_dict()})
    return 0


def cmd_shutdown(args: argparse.Namespace, session: Session) -> int:
    vm = session.find_vm(args.name)
    ts = session.toolstack
    if args.toolstack:
        operation: Callable[[Vm], None] | None = {
            "clean": ts.clean_shutdown,
            "hard": ts.hard_shutdown,
            "reboot": ts.clean_reboot,
            "suspend": ts.suspend,
            "resume": ts.resume,
        }.get(args.toolstack)
        if args.toolstack == "migrate":
            ts.migrate(vm, args.destination)
        else:
            assert operation is not None
            operation(vm)
        _emit(
            args,
            {
                "name": vm.name,
                "operation": args.toolstack,
                "power_state": ts.power_state(vm),
                "domid": ts.domid(vm),
            },
        )
        return 0
    guest = session.guest(vm)
    try:
        answer = guest.request(args.request, args.timeout)
    except GuestTimeout:
        raise GuestTimeout(
            f"the guest did not acknowledge {args.request!r} within {args.timeout:g} s "
            f"(control/shutdown still holds it)"
        ) from None
    _emit(
        args,
        {"name": vm.name, "request": args.request, "answer": answer.outcome, "value": answer.value},
    )
    return 0


def cmd_status(args: argparse.Namespace, session: Session) -> int:
    vm = session.find_vm(args.name)
    data: dict[str, Any] = {
        "name": vm.name,
        "ref": vm.ref,
        "uuid": vm.uuid,
        "toolstack": session.kind,
        "power_state": session.toolstack.power_state(vm),
    }
    domid = session.toolstack.domid(vm)
    if domid is not None:
        status = Guest(session.xs, domid).status()
        data |= status.as_dict()
        del data["features"]
        data |= {f"control/{k}": v for k, v in status.features.items()}
    _emit(args, data)
    return 0


def cmd_destroy(args: argparse.Namespace, session: Session) -> int:
    vm = session.find_vm(args.name)
    session.toolstack.destroy(vm)
    _emit(args, {"name": vm.name, "destroyed": True})
    return 0


def cmd_smoke(args: argparse.Namespace, session: Session) -> int:
    from .report import LiveTable, as_json, write_junit
    from .scenarios import ALL
    from .smoke import FAIL, run_smoke, select

    scenarios = select(ALL, session.kind, args.only, args.skip)
    if not scenarios:
        raise UsageError("--only/--skip left no scenarios to run")
    table = LiveTable(enabled=not args.json)
    table.header()
    started = time.monotonic()
    results = run_smoke(
        session,
        str(args.kernel),
        scenarios,
        table,
        None if args.json else ProgressBar("upload"),
        jobs=args.jobs,
    )
    seconds = time.monotonic() - started
    table.summary(results, seconds)
    if args.json:
        print_json(as_json(results, session.host.name, session.kind, seconds))
    if args.junit:
        write_junit(args.junit, results, session.host.name, seconds)
    return 1 if any(r.outcome == FAIL for r in results) else 0


COMMANDS = {
    "install": cmd_install,
    "start": cmd_start,
    "send": cmd_send,
    "shutdown": cmd_shutdown,
    "status": cmd_status,
    "destroy": cmd_destroy,
    "smoke": cmd_smoke,
}


def _list_scenarios(args: argparse.Namespace) -> int:
    from .scenarios import ALL

    rows = [
        {"name": s.name, "group": s.group, "backends": sorted(s.backends), "expected": s.expected}
        for s in ALL
    ]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(
                f"{row['name']:<28} {row['group']:<9} {','.join(row['backends']):<8} "
                f"{row['expected']}"
            )
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(argv: Sequence[str] | None = None) -> int:
    """Parse, connect, dispatch; ClientError propagates to main()."""
    args = build_parser().parse_args(argv)
    if args.command == "smoke" and args.list:
        return _list_scenarios(args)
    if args.command in ("install", "smoke"):
        check_kernel(args.kernel)
    if args.command == "send":
        send_message(args)
    with Session(_options(args)) as session:
        return COMMANDS[args.command](args, session)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: one-line errors on stderr, never a traceback."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(argv)
    except ClientError as exc:
        print(f"{PROG}: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the VMs this run created were destroyed", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug, but still no traceback for the user
        message = " ".join(str(exc).split())
        print(f"{PROG}: internal error: {type(exc).__name__}: {message}", file=sys.stderr)
        if os.environ.get("XEN_TEST_VM_DEBUG"):
            raise
        return INTERNAL


if __name__ == "__main__":
    sys.exit(main())
