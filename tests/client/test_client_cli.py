"""The front door, through the installed console script: help, host forms, options before the
verb, exit codes, --only/--skip checks, XAPI password sources, environment variables in --help.

No Xen host is needed: a stand-in `ssh` on PATH records its command line where a test checks
what would reach OpenSSH (the real OpenSSH client is used everywhere else).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from xen_test_vm.cli import build_parser
from xen_test_vm.errors import EXIT_CODES_HELP, ExitCode

from tests.client.conftest import CONSOLE_SCRIPT, ROOT, one_error_line, xen_test_vm

VERBS = [
    "install", "start", "status", "send", "request", "shutdown", "reboot", "suspend", "resume",
    "checkpoint", "migrate", "destroy", "smoke", "scale",
]  # fmt: skip


def test_the_console_script_is_installed() -> None:
    assert CONSOLE_SCRIPT.is_file(), "scripts/bootstrap installs the client's console script"


def test_every_verb_has_help_and_the_parser_knows_exactly_these() -> None:
    top = xen_test_vm("--help")
    assert top.returncode == 0
    for verb in VERBS:
        assert re.search(rf"^\s+{verb}\s", top.stdout, re.M), verb
        proc = xen_test_vm(verb, "--help")
        assert proc.returncode == 0 and f"usage: xen-test-vm {verb}" in proc.stdout, proc.stderr
        assert "--timeout" in proc.stdout and "--host" in proc.stdout
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(VERBS)  # type: ignore[arg-type]


def test_every_environment_variable_the_client_reads_is_in_help() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "client" / "xen_test_vm").glob("*.py"))
    read = set(re.findall(r"environ(?:\.get\(|\[)\"([A-Z_]+)\"", sources))
    assert {"XEN_TEST_VM_HOST", "XEN_TEST_VM_KERNEL", "XEN_TEST_VM_XAPI_PASSWORD"} <= read
    help_text = xen_test_vm("--help").stdout
    assert sorted(v for v in read if v not in help_text) == []


def test_every_exit_code_is_documented_in_help_and_readme() -> None:
    help_text = xen_test_vm("--help").stdout
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\s+{int(code)}\s", EXIT_CODES_HELP, re.M), code
        assert re.search(rf"^\s+{int(code)}\s", help_text, re.M), code
        assert f"| {int(code)} |" in readme, code


def test_global_options_go_before_or_after_the_verb() -> None:
    before = xen_test_vm("--host", "no-such-host.invalid", "--timeout", "5", "status", "vm")
    assert "cannot reach no-such-host.invalid" in one_error_line(before, ExitCode.SSH)
    after = xen_test_vm("status", "vm", "--host", "no-such-host.invalid")
    assert "cannot reach no-such-host.invalid" in one_error_line(after, ExitCode.SSH)
    # A value given before the verb is not reset by the verb's own (suppressed) default.
    args = build_parser().parse_args(["--host", "h", "--json", "status", "vm"])
    assert (args.host, args.json, args.name) == ("h", True, "vm")


@pytest.fixture
def recording_ssh(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose `ssh` records its arguments and fails like an unreachable host."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ssh-argv"
    ssh = bin_dir / "ssh"
    ssh.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {log}\n'
        'echo "ssh: connect to host x port 1: Connection refused" >&2\n'
        "exit 255\n"
    )
    ssh.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    return env, log


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("root@h:2222", ["-l", "root", "-p", "2222", "--", "h"]),
        ("ssh://root@h:2222", ["-l", "root", "-p", "2222", "--", "h"]),
        ("ssh://h", ["--", "h"]),
        ("[::1]", ["--", "::1"]),
        ("root@[::1]:2200", ["-l", "root", "-p", "2200", "--", "::1"]),
        ("fe80::1", ["--", "fe80::1"]),
        ("xen-lab", ["--", "xen-lab"]),
    ],
)
def test_host_forms_reach_ssh_as_user_port_and_host(
    recording_ssh: tuple[dict[str, str], Path], host: str, expected: list[str]
) -> None:
    env, log = recording_ssh
    proc = xen_test_vm("--host", host, "status", "vm", env=env)
    assert "Connection refused" in one_error_line(proc, ExitCode.SSH)
    argv = log.read_text().splitlines()
    assert argv[-(len(expected) + 1) :] == [*expected, "true"]


@pytest.mark.parametrize("host", ["h:0", "h:99999", "h:port", "[::1", "[::1]x", "ssh://-oX"])
def test_bad_host_forms_are_one_usage_line(host: str) -> None:
    assert "invalid host name" in one_error_line(
        xen_test_vm("--host", host, "status", "vm"), ExitCode.USAGE
    )


def test_only_and_skip_names_are_checked_before_connecting() -> None:
    # no-such-host.invalid would be exit 3 if anything connected
    proc = xen_test_vm("--host", "no-such-host.invalid", "smoke", "--only", "chekpoint")
    line = one_error_line(proc, ExitCode.USAGE)
    assert "--only: no scenario or group named 'chekpoint'" in line
    proc = xen_test_vm("--host", "no-such-host.invalid", "smoke", "--skip", "nope")
    assert "--skip" in one_error_line(proc, ExitCode.USAGE)


def test_smoke_list_honours_only_and_skip() -> None:
    listed = xen_test_vm("smoke", "--list", "--only", "toolstack", "--skip", "checkpoint")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names and "checkpoint" not in names
    assert all(" toolstack " in line for line in listed.stdout.splitlines())
    everything = xen_test_vm("smoke", "--list").stdout.splitlines()
    assert len(everything) > len(names)


def test_timeout_must_be_positive() -> None:
    proc = xen_test_vm("--host", "h", "--timeout", "0", "shutdown", "vm")
    assert "--timeout" in one_error_line(proc, ExitCode.USAGE)


def test_xapi_password_file_problems_are_usage_errors(tmp_path: Path) -> None:
    proc = xen_test_vm(
        "--host", "h", "--xapi-password-file", str(tmp_path / "none"), "status", "vm"
    )
    assert "cannot read --xapi-password-file" in one_error_line(proc, ExitCode.USAGE)
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), "--host", "h", "--ask-xapi-password", "status", "vm"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert "needs a terminal" in one_error_line(proc, ExitCode.USAGE)


def test_xapi_password_comes_from_the_file_before_the_environment(tmp_path: Path) -> None:
    from xen_test_vm.cli import _xapi_password

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    args = build_parser().parse_args(["--xapi-password-file", str(secret), "status", "vm"])
    assert _xapi_password(args) == "s3cret"
    os.environ["XEN_TEST_VM_XAPI_PASSWORD"] = "from-env"
    try:
        assert _xapi_password(build_parser().parse_args(["status", "vm"])) == "from-env"
        assert _xapi_password(args) == "s3cret"
    finally:
        del os.environ["XEN_TEST_VM_XAPI_PASSWORD"]


def test_a_checkout_without_a_build_is_told_how_to_get_a_kernel(tmp_path: Path) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "Makefile").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "XEN_TEST_VM_KERNEL"}
    proc = xen_test_vm("--host", "h", "install", env=env, cwd=tmp_path)
    line = one_error_line(proc, ExitCode.USAGE)
    assert "build/test-vm.xen.gz does not exist" in line and "--release" in line


def test_smoke_refuses_a_timeout_it_could_not_honour() -> None:
    proc = xen_test_vm("--host", "no-such-host.invalid", "--timeout", "5", "smoke")
    assert "smoke does not take --timeout" in one_error_line(proc, ExitCode.USAGE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count must be between 1 and 10000"),
        (["--count", "3", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["--count", "3", "--memory", "2"], "--memory must be at least 4 MiB"),
        (["--count", "3", "--ready-timeout", "0"], "--ready-timeout must be a positive"),
        (["--count", "3", "--timeout", "5"], "scale does not take --timeout"),
        (["--count", "many"], "argument --count: invalid int value: 'many'"),
        ([], "the following arguments are required: --count"),
    ],
)
def test_scale_refuses_bad_numbers_before_connecting(args: list[str], message: str) -> None:
    proc = xen_test_vm("--host", "no-such-host.invalid", "scale", *args)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--when", "now", "--action", "ignore", "--hang-ms", "soon"], "--hang-ms must be a whole"),
        (["--when", "now", "--action", "ignore", "--ack-delay-ms", "-1"], "ack_delay_ms must be 0"),
        (["{}", "--hang-ms", "5"], "either a raw message or the options"),
        (["--when", "now", "--action", "ignore", "--xs-nodes", "-3"], "xs_nodes must be 0"),
        (
            ["--when", "now", "--action", "ignore", "--balloon-percent", "150"],
            "balloon_percent must be 0 to 100",
        ),
        (["{}", "--balloon-percent", "5"], "either a raw message or the options"),
    ],
)
def test_send_refuses_bad_timed_options_before_connecting(args: list[str], message: str) -> None:
    proc = xen_test_vm("--host", "no-such-host.invalid", "send", "vm", *args)
    assert message in one_error_line(proc, ExitCode.USAGE)
