"""The client against an emulated XAPI POOL on the two-host lab: the XAPI EMULATOR
(lab/xapi_emulator) as master on xen-lab-1 and member on xen-lab-2. Not XAPI: no real
XenServer or XCP-ng was available.

The master owns the pool's database; the member's unix socket forwards every call to it (as
xapi does, ocaml/xapi/api_server.ml ~55-63) and the member runs the domains resident on it.
PVH guests only: they live-migrate with HAP, so this runs on the default hypervisor.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from xen_test_lab import xapi_lab
from xen_test_lab.lab import LabHost
from xen_test_lab.pair import HOST_NAMES

from tests.client.test_client_lab import cli

pytestmark = pytest.mark.lab

PASSWORD = "lab-root-password"

# Run in a dom0 with the emulator's python: log in over the local socket, then report what the
# pool looks like from there (json on stdout, an error code when the login is refused).
_PROBE = """
import json, sys, xmlrpc.client
from xapi_emulator.xe import _UnixTransport
proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=_UnixTransport())
def call(method, *args):
    result = getattr(proxy, method)(*args)
    if result["Status"] != "Success":
        print(json.dumps({"error": result["ErrorDescription"]})); sys.exit(0)
    return result["Value"]
session = call("session.login_with_password", "root", sys.argv[1], "1.0", "probe")
hosts = call("host.get_all_records", session)
pool = call("pool.get_all", session)[0]
vms = call("VM.get_all_records", session)
print(json.dumps({
    "this_host": hosts[call("session.get_this_host", session, session)]["name_label"],
    "master": hosts[call("pool.get_master", session, pool)]["name_label"],
    "hosts": sorted(h["name_label"] for h in hosts.values()),
    "vms": {v["name_label"]: {"power_state": v["power_state"], "domid": v["domid"],
            "uuid": v["uuid"],
            "resident_on": hosts[v["resident_on"]]["name_label"]
            if v["resident_on"] in hosts else ""}
            for v in vms.values() if not v["is_control_domain"]},
}))
"""


def probe(host: LabHost, password: str = PASSWORD) -> dict[str, object]:
    """The pool as XenAPI over host's own socket shows it."""
    command = (
        f"LD_LIBRARY_PATH={xapi_lab.PREFIX}/lib PYTHONPATH={xapi_lab.EMULATOR_DIR} "
        f"{xapi_lab.PREFIX}/usr/bin/python3.11 -c {shlex.quote(_PROBE)} {shlex.quote(password)}"
    )
    result: dict[str, object] = json.loads(host.run(command, timeout=60).stdout)
    return result


@pytest.fixture(scope="module")
def xapi_pool(pvh_lab_pair: tuple[LabHost, LabHost]) -> Iterator[tuple[LabHost, LabHost]]:
    """xen-lab-1 the master, xen-lab-2 its member; plain xl hosts again afterwards."""
    master, member = pvh_lab_pair
    for host in pvh_lab_pair:
        xapi_lab.install(host)
    try:
        xapi_lab.start_pool(master, [member], password=PASSWORD)
        yield master, member
    finally:
        for host in pvh_lab_pair:
            xapi_lab.uninstall(host)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "xapi-password"
    path.write_text(PASSWORD)
    return path


def test_login_over_the_members_socket_is_forwarded_to_the_master(
    xapi_pool: tuple[LabHost, LabHost],
) -> None:
    """The member's socket logs root in with its password, and the session is the master's
    (this_host: the master); without the password the master refuses it, as a login that
    reaches xapi over the network is not pre-authenticated (ocaml/xapi/context.ml ~111)."""
    master, member = xapi_pool
    seen = probe(member)
    assert seen == {
        "this_host": HOST_NAMES[0],
        "master": HOST_NAMES[0],
        "hosts": list(HOST_NAMES),
        "vms": {},
    }
    assert probe(member, "")["error"][0] == "SESSION_AUTHENTICATION_FAILED"  # type: ignore[index]
    assert probe(master, "")["master"] == HOST_NAMES[0]  # the master's own socket: root


def test_smoke_migrate_to_destination_is_a_pool_migrate_to_the_member(
    xapi_pool: tuple[LabHost, LabHost], client_kernel: Path, password_file: Path
) -> None:
    """The smoke matrix's migrate-to-destination row on the pool: VM.pool_migrate from the
    master to xen-lab-2, the guest resumes there (resumes 1) and obeys a clean shutdown that
    the client asks for over the member's socket."""
    master, member = xapi_pool
    proc = cli(
        master, "smoke", "--kernel", str(client_kernel), "--mode", "pvh",
        "--only", "migrate-to-destination", "--destination", HOST_NAMES[1],
        "--xapi-password-file", str(password_file), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, (
        proc.stdout[-3000:] + proc.stderr[-2000:] + xapi_lab.log(master)[-1500:]
        + xapi_lab.log(member)[-1500:]
    )  # fmt: skip
    row = json.loads(proc.stdout)["scenarios"][0]
    assert (row["name"], row["outcome"]) == ("migrate-to-destination", "pass"), row
    assert "obeyed a clean shutdown there" in row["detail"], row
    assert probe(master)["vms"] == {}
    for host in xapi_pool:
        assert "xapi-" not in host.run("xl list").stdout


def test_start_on_the_member_then_pool_migrate_to_the_master(
    xapi_pool: tuple[LabHost, LabHost], client_kernel: Path, password_file: Path
) -> None:
    """VM.start_on the member (the client there), then `migrate --destination` the master:
    VM.resident_on follows, the domain is on that host's xl and nowhere else, and the guest
    obeys a poweroff request there (Halted: actions_after_shutdown destroy)."""
    master, member = xapi_pool
    name = "pool-start-on-member"
    auth = ("--xapi-password-file", str(password_file))
    try:
        installed = cli(member, "install", "--kernel", str(client_kernel), "--name", name,
                        "--mode", "pvh", "--start", *auth)  # fmt: skip
        assert installed.returncode == 0, installed.stdout + installed.stderr
        vm = probe(master)["vms"][name]  # type: ignore[index]
        assert (vm["power_state"], vm["resident_on"]) == ("Running", HOST_NAMES[1]), vm
        # xl knows the domain by the name the emulator writes, the name label (as xenopsd).
        assert member.run(f"xl domid {name}").stdout.strip() == vm["domid"]

        moved = cli(member, "migrate", name, "--destination", HOST_NAMES[0], *auth)
        assert moved.returncode == 0, moved.stdout + moved.stderr + xapi_lab.log(member)[-1500:]
        after = probe(member)["vms"][name]  # type: ignore[index]
        assert (after["power_state"], after["resident_on"]) == ("Running", HOST_NAMES[0]), after
        assert master.run(f"xl domid {name}").stdout.strip() == after["domid"]
        assert member.run(f"xl domid {name}", check=False).returncode != 0, "still on 2"
        resumes = master.run(
            f"xenstore-read /local/domain/{after['domid']}/data/test-vm/resumes"
        ).stdout.strip()
        assert resumes == "1"

        asked = cli(master, "request", name, "poweroff", *auth)
        assert asked.returncode == 0, asked.stdout + asked.stderr
        # The master's domain monitor sees the poweroff and ends the VM Halted: not at once.
        deadline = time.monotonic() + 60
        while (state := probe(master)["vms"][name]["power_state"]) != "Halted":  # type: ignore[index]
            assert time.monotonic() < deadline, f"{state} 60 s after the guest's poweroff"
            time.sleep(1)
    finally:
        cli(master, "destroy", name, *auth)
