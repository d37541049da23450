"""The README's `xen-test-vm --host root@xen1 ...` lines, run as written (by a shell, through the
installed console script) against the real lab, in a user's order: install, status, send,
request, the verbs, destroy.

The user's OpenSSH setup is stood in for: OpenSSH reads ~/.ssh/config from the password
database's home, not $HOME, so `ssh` on PATH is a wrapper that adds `-F` with a config in which
the alias xen1 is the lab's dom0 (user root, the lab's key and pinned host key), as a user's
~/.ssh/config would say. GitHub is replaced by the local fake (tests/release/fake_github.py,
through XEN_TEST_VM_RELEASE_SITE), which serves a release of this client's version: the test
kernel. `ssh -F ~/.cache/...` runs as written with $HOME (the shell expands ~) a directory
whose lab-state/ssh_config is the lab's. Lines that cannot run here are listed, with why, in
tests/client/test_client_readme.py's NOT_RUN."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from xen_test_lab.lab import LabHost, close_ssh, ssh_host_block
from xen_test_vm import __version__
from xen_test_vm.errors import ExitCode
from xen_test_vm.xl import DEFAULT_DIR, config_slug

from tests.client.conftest import CONSOLE_SCRIPT, ROOT
from tests.client.test_client_lab import leftovers
from tests.release.fake_github import FakeGitHub

pytestmark = pytest.mark.lab

README = (ROOT / "README.md").read_text()
NAME = "xen-test-vm"  # the README's VM name (install's default)
REPO = "xapi-project/xen-test-vm"  # the client's default release repository
LAB_SSH_LINE = "ssh -F ~/.cache/xen-test-vm/lab-state/ssh_config xen-lab xl list"

# The README lines this module runs, the synopsis ones (a|b, [optional]) with what fills them.
SYNOPSES = {
    "xen-test-vm --host root@xen1 shutdown|reboot [--force] xen-test-vm": [
        "xen-test-vm --host root@xen1 reboot --force xen-test-vm",
        "xen-test-vm --host root@xen1 shutdown --force xen-test-vm",
        "xen-test-vm --host root@xen1 reboot xen-test-vm",
        "xen-test-vm --host root@xen1 shutdown xen-test-vm",
    ],
    "xen-test-vm --host root@xen1 suspend|resume|checkpoint|destroy xen-test-vm": [
        "xen-test-vm --host root@xen1 suspend xen-test-vm",
        "xen-test-vm --host root@xen1 resume xen-test-vm",
        "xen-test-vm --host root@xen1 checkpoint xen-test-vm",
        "xen-test-vm --host root@xen1 destroy xen-test-vm",
    ],
    "xen-test-vm --host root@xen1 migrate xen-test-vm [--destination MEMBER]": [
        "xen-test-vm --host root@xen1 migrate xen-test-vm",
    ],
    "xen-test-vm --host root@xen1 smoke [--mode pv|pvh] [--only NAME|GROUP] [--skip NAME] "
    "[--jobs 3] [--junit FILE]": [
        "xen-test-vm --host root@xen1 smoke --mode pvh --only boot-status --jobs 3 "
        "--junit smoke.xml",
    ],
}
AS_WRITTEN = [
    "xen-test-vm --host root@xen1 install --start",
    "xen-test-vm --host root@xen1 install --kernel build/test-vm.xen.gz --name xen-test-vm "
    "--memory 32",
    "xen-test-vm --host root@xen1 install --mode pvh",
    "xen-test-vm --host root@xen1 status xen-test-vm",
    "xen-test-vm --host root@xen1 send xen-test-vm --when onshutdown --action ignore --ack none",
    """xen-test-vm --host root@xen1 send xen-test-vm '{"when":"now","action":"crash"}'""",
    "xen-test-vm --host root@xen1 send xen-test-vm --when onshutdown --action poweroff --ack ok "
    "--ack-delay-ms 61000",
    "xen-test-vm --host root@xen1 send xen-test-vm --when onshutdown --action ignore --ack none "
    "--hang-ms forever",
    "xen-test-vm --host root@xen1 request xen-test-vm poweroff --timeout 10",
    LAB_SSH_LINE,
]
RUN_HERE = [*AS_WRITTEN, *SYNOPSES]


def readme_line(line: str) -> str:
    """line, after checking the README still shows it (comments after it aside)."""
    shown = [re.sub(r"\s+#.*$", "", ln.strip()) for ln in README.splitlines()]
    assert line in shown, f"the README no longer shows: {line}"
    return line


def filled(synopsis: str, line: str) -> str:
    """line, one way of writing the README's synopsis line (an alternative, optional parts)."""
    readme_line(synopsis)
    assert line in SYNOPSES[synopsis]
    words, pattern = shlex.split(line), re.findall(r"\[[^\]]*\]|\S+", synopsis)
    placeholders = {"NAME": r"[a-z-]+", "GROUP": r"[a-z]+", "FILE": r"\S+", "MEMBER": r"\S+"}
    regex = ""
    for word in pattern:
        optional = word.startswith("[") and word.endswith("]")
        parts = word.strip("[]").split()
        alternatives = [
            "|".join(placeholders.get(a, re.escape(a)) for a in part.split("|")) for part in parts
        ]
        piece = " ".join(f"(?:{a})" for a in alternatives)
        regex += f"(?: {piece})?" if optional else f" {piece}"
    assert re.fullmatch(regex.strip(), " ".join(words)), (line, regex)
    return line


@dataclass
class User:
    """A user's machine: a shell, a working directory, HOME and PATH; xen1 is the lab."""

    env: dict[str, str]
    cwd: Path
    stderr: str = ""  # of the last line run

    def run(self, line: str, code: int = ExitCode.OK) -> dict[str, str]:
        """Run the line in a shell; its `key  value` output as a dict once it exits with code."""
        proc = subprocess.run(
            ["sh", "-c", line],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=600,
        )
        assert proc.returncode == code, (line, proc.returncode, proc.stdout, proc.stderr)
        self.stderr = proc.stderr
        rows = (row.partition(" ") for row in proc.stdout.splitlines() if row.strip())
        return {key: value.strip() for key, _, value in rows}


def _user_ssh(tmp_path: Path, lab: LabHost) -> Path:
    """bin/ssh: the real ssh with a config naming the lab xen1 (a user's ~/.ssh/config)."""
    config = tmp_path / "user-ssh-config"
    config.write_text(ssh_host_block("xen1", lab.port, lab.run_dir, lab.ssh_alias))
    real = next(
        p / "ssh"
        for p in map(Path, os.environ["PATH"].split(os.pathsep))
        if (p / "ssh").is_file() and os.access(p / "ssh", os.X_OK)
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(str(real))} -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


@pytest.fixture
def user(lab_host: LabHost, client_kernel: Path, tmp_path: Path) -> Iterator[User]:
    """HOME and a working directory in tmp_path, the fake GitHub serving this client's release,
    and nothing of the README's VM left on the lab afterwards."""
    image = client_kernel.read_bytes()
    sums = f"{hashlib.sha256(image).hexdigest()}  test-vm.xen.gz\n".encode()
    home = tmp_path / "home"
    state = home / ".cache" / "xen-test-vm" / "lab-state"
    state.mkdir(parents=True)
    (state / "ssh_config").write_text(lab_host.ssh_config.read_text())
    work = tmp_path / "work"
    work.mkdir()
    bin_dir = _user_ssh(tmp_path, lab_host)
    with FakeGitHub(repo=REPO) as fake:
        fake.publish_directly(__version__, {"test-vm.xen.gz": image, "SHA256SUMS": sums})
        env = {k: v for k, v in os.environ.items() if not k.startswith("XEN_TEST_VM_")}
        env |= {
            "HOME": str(home),
            "PATH": os.pathsep.join([str(bin_dir), str(CONSOLE_SCRIPT.parent), env["PATH"]]),
            "XEN_TEST_VM_RELEASE_SITE": fake.web_url,
            "XEN_TEST_VM_CACHE": str(tmp_path / "cache"),
        }
        try:
            yield User(env, work)
        finally:
            config = f"{DEFAULT_DIR}/vms/{config_slug(NAME)}.cfg"
            lab_host.run(
                f"xl destroy {NAME} 2>/dev/null; rm -f {config} {DEFAULT_DIR}/test-vm.xen.gz "
                f"{DEFAULT_DIR}/saved/{config_slug(NAME)}.save",
                check=False,
            )


def _until_ready(user: User, other_than: str = "") -> dict[str, str]:
    """The README's status line again until the kernel (in a domain other than other_than) says
    ready: a toolstack start returns once the domain runs, before the kernel is up."""
    for _ in range(120):
        status = user.run(readme_line("xen-test-vm --host root@xen1 status xen-test-vm"))
        if status.get("state") == "ready" and status.get("domid") != other_than:
            return status
    raise AssertionError(f"the kernel never said ready: {status}")


def _config(lab: LabHost) -> str:
    return lab.run(f"cat {DEFAULT_DIR}/vms/{config_slug(NAME)}.cfg").stdout


def test_the_readme_client_lines_run_as_written(user: User, lab_host: LabHost) -> None:
    line = readme_line  # every line below is checked against the README before it runs
    # A pip user outside a checkout: the released kernel, downloaded, verified, booted.
    installed = user.run(line(AS_WRITTEN[0]))
    assert f"kernel: release {__version__} from " in user.stderr
    assert f"/{REPO}/releases/download/{__version__}/test-vm.xen.gz" in user.stderr
    assert installed["domid"] and installed["mode"] == "pv"  # xl's default
    first = _until_ready(user)
    assert first["power_state"] == "running" and first["armed"] == ""

    # An armed ignore without acknowledgement: the request is left unanswered (exit 4).
    sent = user.run(line(AS_WRITTEN[4]))
    assert '"action":"ignore"' in sent["sent"] and "ignore" in sent["armed"]
    user.run(line(AS_WRITTEN[8]), code=ExitCode.TIMEOUT)
    assert "did not acknowledge 'poweroff' within 10 s" in user.stderr
    # Crash now: xl's on_crash destroys the domain.
    user.run(line(AS_WRITTEN[5]))
    assert user.run(line(AS_WRITTEN[3]))["power_state"] == "halted"
    restarted = user.run(filled(*_synopsis("reboot --force")))
    assert restarted["power_state"] == "running" and restarted["domid"] != first["domid"]
    _until_ready(user)

    # Timed behaviour: armed (and replaced by the next message), then a forced shutdown.
    late = user.run(line(AS_WRITTEN[6]))
    assert "61000" in late["armed"] and "poweroff" in late["armed"]
    hang = user.run(line(AS_WRITTEN[7]))
    assert "forever" in hang["armed"] and "61000" not in hang["armed"]
    halted = user.run(filled(*_synopsis("shutdown --force")))
    assert halted["power_state"] == "halted" and halted["domid"] == ""

    # In a checkout: the local build, then PVH for the next boot.
    (user.cwd / "build").mkdir()
    (user.cwd / "build" / "test-vm.xen.gz").write_bytes(_released(user).read_bytes())
    assert user.run(line(AS_WRITTEN[1]))["kernel_source"] == "file build/test-vm.xen.gz"
    assert re.search(r"^memory = 32$", _config(lab_host), re.M)
    pvh = user.run(line(AS_WRITTEN[2]))
    assert pvh["kernel_source"] == "local build build/test-vm.xen.gz" and pvh["mode"] == "pvh"
    assert re.search(r'^type = "pvh"$', _config(lab_host), re.M)
    booted = user.run(filled(*_synopsis("reboot --force")))
    assert booted["power_state"] == "running"
    assert '"type": "pvh"' in lab_host.run(f"xl list -l {NAME}").stdout
    ready = _until_ready(user)

    # The verbs, as xl's: each leaves the state it names.
    rebooted = user.run(filled(*_synopsis("reboot")))
    assert rebooted["power_state"] == "running" and rebooted["domid"] != ready["domid"]
    _until_ready(user)
    assert user.run(filled(*_synopsis("suspend")))["power_state"] == "suspended"
    assert user.run(filled(*_synopsis("resume")))["power_state"] == "running"
    assert _until_ready(user)["resumes"] == "1"
    assert user.run(filled(*_synopsis("checkpoint")))["power_state"] == "running"
    migrated = user.run(filled(*_synopsis("migrate")))  # PVH: hap log-dirty, this Xen has it
    assert migrated["power_state"] == "running"
    assert _until_ready(user)["resumes"] == "3"
    assert user.run(filled(*_synopsis("shutdown")))["power_state"] == "halted"
    assert user.run(filled(*_synopsis("destroy")))["destroyed"] == "True"
    assert leftovers(lab_host, NAME) == []

    # The smoke matrix, one scenario of it, with the released kernel.
    user.run(filled(*_synopsis("smoke")))
    assert 'tests="1"' in (user.cwd / "smoke.xml").read_text()
    assert leftovers(lab_host, NAME) == []


def _synopsis(verb: str) -> tuple[str, str]:
    """(the README synopsis, the line filled in) for the line that runs verb."""
    for synopsis, lines in SYNOPSES.items():
        for line in lines:
            if line.split("root@xen1 ", 1)[1].startswith(f"{verb} ") and (
                "--force" in verb or "--force" not in line
            ):
                return synopsis, line
    raise AssertionError(f"no filled-in line for {verb}")


def _released(user: User) -> Path:
    """The kernel the first line downloaded into the cache."""
    return next(Path(user.env["XEN_TEST_VM_CACHE"]).rglob("test-vm.xen.gz"))


def test_the_readme_ssh_line_reaches_the_lab_and_close_ssh_ends_its_master(
    user: User, lab_host: LabHost
) -> None:
    """`ssh -F ~/.cache/.../ssh_config xen-lab xl list` leaves a master (the config's
    ControlPersist); close_ssh, through the one SSH runner, stops it."""
    proc = subprocess.run(
        ["sh", "-c", readme_line(LAB_SSH_LINE)],
        capture_output=True,
        text=True,
        env=user.env,
        timeout=120,
    )
    assert proc.returncode == 0 and "Domain-0" in proc.stdout, proc.stderr
    check = ["ssh", "-F", str(lab_host.ssh_config), "-O", "check", lab_host.ssh_alias]
    assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    close_ssh(lab_host)
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0
    assert lab_host.run("echo still here").stdout == "still here\n"  # a new runner
