"""XML-RPC over HTTP on XAPI's unix socket and on TCP, as xapi serves it (an EMULATOR).

ocaml/xapi/xapi_globs.ml ~81: the unix socket is /var/lib/xcp/xapi. Results are XAPI's
{"Status": "Success", "Value": v} / {"Status": "Failure", "ErrorDescription": [...]}.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import socketserver
import sys
import threading
import traceback
import xmlrpc.client
from http.server import BaseHTTPRequestHandler
from typing import Any

from .api import ApiError, Emulator, HostConfig, Timeouts
from .xenstore import SOCKET, Xenstore

UNIX_SOCKET = "/var/lib/xcp/xapi"
INVENTORY = "/etc/xensource-inventory"


class _Handler(BaseHTTPRequestHandler):
    server: Any  # UnixServer | TcpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write("xapi-emulator: " + (format % args) + "\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            params, method = xmlrpc.client.loads(body, use_builtin_types=False)
        except Exception:
            self.send_error(400, "bad XML-RPC request")
            return
        if self._forwarded(method or ""):
            self._forward(body)
            return
        response: dict[str, Any]
        try:
            value = self.server.emulator.call(method or "", list(params), self.server.via_unix)
            response = {"Status": "Success", "Value": "" if value is None else value}
        except ApiError as exc:
            response = {"Status": "Failure", "ErrorDescription": exc.description}
        except Exception as exc:
            traceback.print_exc()
            response = {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", repr(exc)]}
        if self.server.verbose:
            sys.stderr.write(f"xapi-emulator: {method} -> {response['Status']}\n")
        data = xmlrpc.client.dumps((response,), methodresponse=True, allow_none=False).encode()
        self._reply(data)

    def _forwarded(self, method: str) -> bool:
        """On a pool member: ocaml/xapi/api_server.ml ~55-63 forwards every call that comes in
        on the unix socket to the master, except a whitelist (ocaml/idl/datamodel.ml ~10841:
        session.login, session.slave_login and the emergency calls, none of which the emulator
        serves). So a login over the member's socket is the master's: it arrives there over
        the network, where it is not pre-authenticated (ocaml/xapi/context.ml ~111 preauth),
        and needs root's password. On TCP, a member answers login_with_password itself
        (HOST_IS_SLAVE); the emulator forwards the rest to keep one database."""
        if not self.server.emulator.host_config.master_address:
            return False
        if method.startswith("pool_internal."):
            return False
        return self.server.via_unix or method != "session.login_with_password"

    def _forward(self, body: bytes) -> None:
        config = self.server.emulator.host_config
        connection = http.client.HTTPConnection(config.master_address, config.master_port)
        try:
            connection.request("POST", "/", body, {"Content-Type": "text/xml"})
            data = connection.getresponse().read()
        except OSError as exc:
            failure = {"Status": "Failure", "ErrorDescription": ["HOST_OFFLINE", repr(exc)]}
            data = xmlrpc.client.dumps((failure,), methodresponse=True).encode()
        finally:
            connection.close()
        self._reply(data)

    def _reply(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, emulator: Emulator, verbose: bool) -> None:
        if os.path.exists(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        super().__init__(path, _Handler)
        self.emulator = emulator
        self.via_unix = True
        self.verbose = verbose

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, _ = super().get_request()
        return sock, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port) address


class TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, emulator: Emulator, verbose: bool) -> None:
        super().__init__(("0.0.0.0", port), _Handler)
        self.emulator = emulator
        self.via_unix = False
        self.verbose = verbose


def write_inventory(host_uuid: str) -> None:
    """XAPI hosts have /etc/xensource-inventory; clients look for it to recognise one."""
    with open(INVENTORY, "w") as f:
        f.write(f"INSTALLATION_UUID='{host_uuid}'\nPRODUCT_BRAND='XAPI emulator'\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xapi-emulator",
        description="An XAPI EMULATOR for the xen-test-vm lab (not XenServer, not XCP-ng).",
    )
    parser.add_argument("--socket", default=UNIX_SOCKET)
    parser.add_argument("--port", type=int, default=80, help="TCP port (0: none)")
    parser.add_argument("--password-file", default="", help="root's password for TCP logins")
    parser.add_argument("--xapi-version", default="26.1.3")
    parser.add_argument("--host-name", default="xen-lab")
    parser.add_argument("--host-address", default="", help="host.address (default: 127.0.0.1)")
    parser.add_argument("--master-address", default="", help="be a pool member of this master")
    parser.add_argument(
        "--pool-secret-file", default="", help="the pool's shared secret (masters and members)"
    )
    parser.add_argument("--shutdown-ack-timeout", type=float, default=Timeouts.shutdown_ack)
    parser.add_argument("--suspend-ack-timeout", type=float, default=Timeouts.suspend_ack)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    password = ""
    if args.password_file:
        with open(args.password_file) as f:
            password = f.read().strip()
    pool_secret = ""
    if args.pool_secret_file:
        with open(args.pool_secret_file) as f:
            pool_secret = f.read().strip()
    xs = Xenstore(SOCKET)
    timeouts = Timeouts(
        shutdown_ack=args.shutdown_ack_timeout, suspend_ack=args.suspend_ack_timeout
    )
    host = HostConfig(
        name=args.host_name,
        xapi_version=args.xapi_version,
        password=password,
        address=args.host_address or "127.0.0.1",
        master_address=args.master_address,
        master_port=args.port or 80,
        pool_secret=pool_secret,
    )
    emulator = Emulator(xs, host, timeouts)
    write_inventory(emulator.db.get("host", emulator.host)["uuid"])
    servers: list[socketserver.BaseServer] = [UnixServer(args.socket, emulator, args.verbose)]
    if args.port:
        servers.append(TcpServer(args.port, emulator, args.verbose))
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.master_address:
        emulator.join_master()  # before "ready": a member's socket forwards from the start
    print(f"xapi-emulator: ready on {args.socket}" + (f" and TCP {args.port}" if args.port else ""),
          flush=True)  # fmt: skip
    servers[0].serve_forever()
    return 0
