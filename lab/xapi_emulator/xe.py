"""A minimal `xe` for the XAPI emulator: what the client's cleanup scripts run (EMULATOR).

xe vm-shutdown [--force] uuid=U | xe vm-destroy uuid=U | xe vm-list [name-label=N] [--minimal]
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import xmlrpc.client
from typing import Any

from .server import UNIX_SOCKET

PASSWORD_FILE = "/etc/xapi-emulator-password"  # written by the lab (xapi_lab.start)


class _UnixConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(UNIX_SOCKET)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection("localhost")


def _call(proxy: Any, method: str, *args: Any) -> Any:
    result = getattr(proxy, method)(*args)
    if result.get("Status") != "Success":
        raise SystemExit("xe: " + " ".join(result.get("ErrorDescription", ["failed"])))
    return result["Value"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(
            "usage: xe vm-shutdown [--force] uuid=U | vm-destroy uuid=U | "
            "vm-list [name-label=N] [--minimal]",
            file=sys.stderr,
        )
        return 2
    params = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=_UnixTransport())
    # xe logs in as root over the local socket. On a pool member xapi forwards that login to
    # the master, where only root's password logs in (server.py _forwarded); the real xe's CLI
    # path authenticates locally, this stand-in reads the password the lab gave root.
    password = ""
    if os.path.exists(PASSWORD_FILE):
        with open(PASSWORD_FILE) as f:
            password = f.read().strip()
    session = _call(proxy, "session.login_with_password", "root", password, "1.0", "xe")
    command = argv[0]
    if command == "vm-list":
        records = _call(proxy, "VM.get_all_records", session).values()
        if "name-label" in params:
            records = [r for r in records if r["name_label"] == params["name-label"]]
        if "--minimal" in argv:  # as xe prints it: the uuids, comma-separated
            print(",".join(r["uuid"] for r in records))
            return 0
        for record in records:
            print(f"uuid ( RO): {record['uuid']}\n  name-label ( RW): {record['name_label']}\n"
                  f"  power-state ( RO): {record['power_state'].lower()}\n")  # fmt: skip
        return 0
    if command not in ("vm-shutdown", "vm-destroy") or "uuid" not in params:
        print(f"xe: unsupported by the emulator: {' '.join(argv)}", file=sys.stderr)
        return 2
    vm = _call(proxy, "VM.get_by_uuid", session, params["uuid"])
    if command == "vm-shutdown":
        _call(proxy, "VM.hard_shutdown" if "--force" in argv else "VM.clean_shutdown", session, vm)
    else:
        _call(proxy, "VM.destroy", session, vm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
