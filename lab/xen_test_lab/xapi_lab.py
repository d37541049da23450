"""Turn the running lab's dom0 into an emulated XAPI host, on demand, and back again.

The boot initramfs stays as it is: Debian's python3.11 (python3.11-minimal, libpython3.11-minimal,
libpython3.11-stdlib and the two libraries the interpreter links beyond dom0's) is fetched with
`apt-get download` into the lab cache, packed once, and unpacked into /opt/xapi-python of the
running dom0. The emulator (lab/xapi_emulator, standard library only) then serves XenAPI on
/var/lib/xcp/xapi. It is an EMULATOR: no real XenServer or XCP-ng was available.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import shlex
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from xen_test_vm import xl_writer

from . import packages
from .errors import LabError
from .lab import LabHost
from .paths import cache_dir

PYTHON_PACKAGES = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libexpat1",
    "zlib1g",
)
PREFIX = "/opt/xapi-python"
EMULATOR_DIR = "/usr/lib/xapi-emulator"
PID_FILE = "/run/xapi-emulator.pid"
LOG_FILE = "/var/log/xapi-emulator.log"
XAPI_SOCKET = "/var/lib/xcp/xapi"
GUEST_DIR = "/var/lib/xcp/guest"
PASSWORD_FILE = "/etc/xapi-emulator-password"
POOL_SECRET_FILE = "/etc/xapi-emulator-pool-secret"
BUNDLE_REVISION = "1"
EMULATOR_SOURCE = Path(__file__).resolve().parents[1] / "xapi_emulator"
# Not needed to run a stdlib XML-RPC server; keeps the copy into dom0 small.
_SKIP_PARTS = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
               "pydoc_data", "doc", "man", "__pycache__", "distutils", "unittest", "sqlite3",
               "curses", "dbm"}  # fmt: skip


@dataclass(frozen=True)
class PoolRole:
    """This host's place in an emulated pool: its name (host.name_label and host.address), the
    master's address (empty: it is the master) and the pool's shared secret."""

    name: str
    master: str
    secret: str


def _candidates(names: tuple[str, ...]) -> list[packages.Package]:
    out = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise LabError(f"apt-cache show {' '.join(names)} failed: {out.stderr.strip()[-200:]}")
    found: dict[str, packages.Package] = {}
    for stanza in out.stdout.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and fields["Package"] not in found:
            found[fields["Package"]] = packages.Package(
                fields["Package"], fields["Version"], fields.get("Architecture", "amd64")
            )
    missing = [n for n in names if n not in found]
    if missing:
        raise LabError(f"apt knows no package {missing[0]}: run `apt-get update`")
    return [found[n] for n in names]


def python_bundle() -> Path:
    """A tar.gz of Debian's python3.11 under /opt/xapi-python (built once per package set)."""
    pkgs = _candidates(PYTHON_PACKAGES)
    digest = hashlib.sha256((packages.fingerprint(pkgs) + BUNDLE_REVISION).encode()).hexdigest()[
        :16
    ]
    bundle = cache_dir() / "xapi-python" / f"python-{digest}.tar.gz"
    if bundle.exists():
        return bundle
    debs = packages.download(pkgs, cache_dir() / "debs")
    staging = bundle.with_suffix(".staging")
    packages.unpack(debs, staging)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    partial = bundle.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(staging.rglob("*")):
            relative = path.relative_to(staging)
            if _SKIP_PARTS.intersection(relative.parts) or path.is_dir():
                continue
            top = relative.parts[0]
            if top == "usr" and relative.parts[1] in ("share",):
                continue
            if relative.parts[:2] == ("usr", "bin") and relative.name != "python3.11":
                continue
            if top == "etc":
                continue
            # Libraries from /lib and /usr/lib/x86_64-linux-gnu go into PREFIX/lib.
            if "x86_64-linux-gnu" in relative.parts and "python3.11" not in relative.parts:
                target = f"{PREFIX.lstrip('/')}/lib/{relative.name}"
            else:
                target = f"{PREFIX.lstrip('/')}/{relative}"
            tar.add(path, arcname=target, recursive=False)
    partial.rename(bundle)
    subprocess.run(["rm", "-rf", str(staging)], check=False)
    return bundle


def _emulator_tar() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for path in sorted(EMULATOR_SOURCE.glob("*.py")):
            tar.add(path, arcname=f"{EMULATOR_DIR.lstrip('/')}/xapi_emulator/{path.name}")
        # The emulator writes its xl configs with the client's writer, imported as in the
        # checkout; the client's __init__ stays out (dom0 has no VERSION file for it to read):
        # xen_test_vm is a namespace package there, holding this one module.
        tar.add(xl_writer.__file__, arcname=f"{EMULATOR_DIR.lstrip('/')}/xen_test_vm/xl_writer.py")
    return data.getvalue()


def _python_command(module: str) -> str:
    return (
        f"LD_LIBRARY_PATH={PREFIX}/lib PYTHONPATH={EMULATOR_DIR} PYTHONDONTWRITEBYTECODE=1 "
        f"exec {PREFIX}/usr/bin/python3.11 -m {module}"
    )


def _run_ssh(host: LabHost, command: str, data: bytes, timeout: float = 300.0) -> None:
    result = host.run(command, check=False, timeout=timeout, input=data)
    if result.returncode != 0:
        raise LabError(f"dom0: {command[:60]} failed: {result.stderr.strip()[-300:]}")


def install(host: LabHost) -> None:
    """Copy python and the emulator into dom0 (idempotent), plus `xe` and the guest dir."""
    if host.run(f"test -x {PREFIX}/usr/bin/python3.11", check=False).returncode != 0:
        _run_ssh(host, "tar -xzf - -C /", python_bundle().read_bytes())
    _run_ssh(host, f"rm -rf {EMULATOR_DIR} && tar -xzf - -C /", _emulator_tar())
    xe = f'#!/bin/sh\n{_python_command("xapi_emulator.xe")} "$@"\n'
    host.run(f"cat > /usr/bin/xe && chmod +x /usr/bin/xe && mkdir -p {GUEST_DIR}", input=xe)


def start(
    host: LabHost,
    *,
    password: str = "lab-root-password",
    shutdown_ack_timeout: float | None = None,
    suspend_ack_timeout: float | None = None,
    xapi_version: str = "26.1.3",
    timeout: float = 60.0,
    pool: PoolRole | None = None,
) -> None:
    """Start the emulator in dom0 and wait until its socket answers (a pool member: until it
    joined its master, which must be running)."""
    stop(host)
    options = ["--password-file", PASSWORD_FILE, "--xapi-version", xapi_version]
    if pool is not None:
        options += ["--host-name", pool.name, "--host-address", pool.name]
        options += ["--pool-secret-file", POOL_SECRET_FILE]
        if pool.master:
            options += ["--master-address", pool.master]
        host.run(f"umask 077; printf %s {shlex.quote(pool.secret)} > {POOL_SECRET_FILE}")
    if shutdown_ack_timeout is not None:
        options += ["--shutdown-ack-timeout", str(shutdown_ack_timeout)]
    if suspend_ack_timeout is not None:
        options += ["--suspend-ack-timeout", str(suspend_ack_timeout)]
    command = _python_command("xapi_emulator") + " " + shlex.join(options)
    host.run(
        f"umask 077; printf %s {shlex.quote(password)} > {PASSWORD_FILE}; "
        f"setsid sh -c {shlex.quote(command)} >{LOG_FILE} 2>&1 </dev/null & echo $! > {PID_FILE}"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "xapi-emulator: ready" in host.run(f"cat {LOG_FILE}", check=False).stdout:
            return
        if host.run(f"kill -0 $(cat {PID_FILE})", check=False).returncode != 0:
            break
        time.sleep(0.5)
    raise LabError(f"the XAPI emulator did not start: {log(host)[-1500:]}")


def start_pool(
    master: LabHost, members: list[LabHost], *, password: str = "lab-root-password"
) -> None:
    """The two-host lab as one emulated pool: the first host the master, the others members
    (each known by its ssh alias, xen-lab-N, which its dom0 resolves over the link)."""
    secret = secrets.token_hex(16)
    start(master, password=password, pool=PoolRole(master.ssh_alias, "", secret))
    for member in members:
        start(member, password=password, pool=PoolRole(member.ssh_alias, master.ssh_alias, secret))


def log(host: LabHost) -> str:
    """The emulator's output so far."""
    return host.run(f"cat {LOG_FILE} 2>/dev/null || true", check=False).stdout


def stop(host: LabHost) -> None:
    """Stop the emulator and destroy the domains it made. `xe` stays: to the client this is a
    XAPI host whose xapi is down (refused, XAPI_NOT_RUNNING); uninstall() makes it plain xl."""
    host.run(
        f"[ -f {PID_FILE} ] && kill $(cat {PID_FILE}) 2>/dev/null; rm -f {PID_FILE}; "
        "for d in $(xl list | awk '$1 ~ /^xapi-/ {print $2}'); do xl destroy $d; done; "
        f"rm -f {XAPI_SOCKET} /etc/xensource-inventory {POOL_SECRET_FILE}; "
        "rm -rf /var/lib/xapi-emulator; true",
        check=False,
    )


def uninstall(host: LabHost) -> None:
    """stop(), and remove `xe` so that detection sees an xl host."""
    stop(host)
    host.run(f"rm -f /usr/bin/xe; rm -rf {EMULATOR_DIR}", check=False)
