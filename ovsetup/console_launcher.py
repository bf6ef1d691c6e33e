"""`engine-console-launcher [--root DIR] [--listen ADDR] [--port 8443]`: the engine's part of a console.

A reference for engine integrators, small on purpose. Over HTTPS with the engine certificate it serves
a page listing the VMs of `/etc/ovirt-engine/console-launcher.conf`; each VM's Console button opens
the proxy's console page (`https://<WebSocketProxy>/console/`) in a new window, fetches a fresh ticket
from `POST /ticket/<vm>` (signed like `engine-console-ticket`, with `keys/engine.p12`) and posts
`{connectionTicket, password}` to that window once it announces itself. `/ca.crt` is the engine CA.

It has no login of its own: whoever reaches it can open every listed console, so it listens on
loopback unless `--listen` says otherwise.
"""
from __future__ import annotations

import argparse
import configparser
import http.server
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import jinja2
from cryptography.hazmat.primitives import serialization

from ovcommon import ticket
from ovcommon.paths import CA_CERT, ENGINE_STORE, ETC_DIR, Root
from ovcommon.resources import resource_dir
from ovsetup.console_ticket import TicketCommandError, proxy_address, store_password

PROG = "engine-console-launcher"
VM_LIST = ETC_DIR / "console-launcher.conf"
TICKET_LIFETIME = 120
PAGES = resource_dir("templates") / "console-launcher"
log = logging.getLogger(PROG)


@cache
def _pages() -> jinja2.Environment:
    """The page and its script, in `templates/console-launcher/`."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(PAGES),
                              autoescape=True, undefined=jinja2.StrictUndefined)


class LauncherError(Exception):
    """A problem the user can act on, printed as one line."""


@dataclass(frozen=True)
class Vm:
    name: str
    host: str
    port: int
    ssl_target: bool
    password_file: Path


def load_vms(root: Root) -> dict[str, Vm]:
    """The `[vm NAME]` sections of the VM list; paths in it are the target system's."""
    path = root.path(VM_LIST)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if not parser.read(path, encoding="utf-8"):
            raise LauncherError(f"no VM list at {path}: add [vm NAME] sections with host, port, ssl_target, "
                                "password_file")
    except configparser.Error as exc:
        raise LauncherError(f"{path}: {exc.message}") from None
    vms = {}
    for section in parser.sections():
        kind, _, name = section.partition(" ")
        values = parser[section]
        where = f"{path} [{section}]"
        if kind != "vm" or not name.strip():
            raise LauncherError(f"{where}: sections are [vm NAME]")
        if not ticket.valid_host(values.get("host", "")):
            raise LauncherError(f"{where}: host is not a host name or address")
        port = values.get("port", "")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise LauncherError(f"{where}: port is not a port number")
        try:
            ssl_target = values.getboolean("ssl_target", fallback=False)
        except ValueError:
            raise LauncherError(f"{where}: ssl_target is not true or false") from None
        password_file = values.get("password_file", "")
        if not password_file.startswith("/"):
            raise LauncherError(f"{where}: password_file is not an absolute path")
        vms[name.strip()] = Vm(name.strip(), values["host"], int(port), ssl_target,
                               root.path(PurePosixPath(password_file)))
    return vms


def tls_context(root: Root) -> ssl.SSLContext:
    """The engine's certificate and key, from `keys/engine.p12`."""
    store = root.path(ENGINE_STORE)
    try:
        key, cert = ticket.load_engine_store(store, store_password(root))
    except (OSError, ValueError) as exc:
        raise LauncherError(f"cannot open the engine key store {store}: {exc}") from None
    # ssl loads keys from files only: hand it the key encrypted with a one-time password, in a
    # private directory, for the moment of loading.
    once = secrets.token_urlsafe(24)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix=f"{PROG}-") as folder:
        pem = Path(folder) / "engine.pem"
        pem.touch(0o600)
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(once.encode()))
                        + cert.public_bytes(serialization.Encoding.PEM))
        ctx.load_cert_chain(pem, password=once)
    return ctx


class Launcher:
    """What the handler needs: the root (for the signing key, the option and the CA) and the VMs."""

    def __init__(self, root: Root, vms: dict[str, Vm]) -> None:
        self.root = root
        self.vms = vms

    def page(self) -> str:
        """The VM list; each row carries the URL of the console page of the proxy that reaches its VM."""
        vms = [(vm, f"https://{proxy_address(self.root, vm.host)}/console/") for vm in self.vms.values()]
        return _pages().get_template("index.html.j2").render(vms=vms)

    def ticket(self, vm: Vm) -> dict[str, str]:
        """What the engine hands the console page: a fresh signed ticket and the VNC password."""
        try:
            password = vm.password_file.read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise LauncherError(f"cannot read the VNC password of {vm.name}: {exc}") from None
        key, cert = ticket.load_engine_store(self.root.path(ENGINE_STORE), store_password(self.root))
        signed = ticket.sign(ticket.encode_data(vm.host, vm.port, vm.ssl_target), key, cert, TICKET_LIFETIME)
        return {"connectionTicket": signed, "password": password}


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:  # noqa: N802
        launcher = self.server.launcher
        if self.path == "/":
            try:
                self._send(200, "text/html; charset=utf-8", launcher.page().encode())
            except TicketCommandError as exc:
                self._send(503, "text/plain; charset=utf-8", f"{exc}\n".encode())
        elif self.path == "/launcher.js":
            self._send(200, "text/javascript; charset=utf-8", (PAGES / "launcher.js").read_bytes())
        elif self.path == "/ca.crt" and launcher.root.path(CA_CERT).is_file():
            self._send(200, "application/x-x509-ca-cert", launcher.root.path(CA_CERT).read_bytes())
        else:
            self._send(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:  # noqa: N802
        name = urllib.parse.unquote(self.path.removeprefix("/ticket/"))
        vm = self.server.launcher.vms.get(name) if self.path.startswith("/ticket/") else None
        if vm is None:
            self._send(404, "text/plain", b"no such VM\n")
            return
        try:
            body = json.dumps(self.server.launcher.ticket(vm)).encode()
        except (LauncherError, TicketCommandError, OSError, ValueError) as exc:
            log.error("ticket for %s: %s", vm.name, exc)
            self._send(500, "text/plain", b"cannot make a ticket, see the launcher's log\n")
            return
        log.info("ticket for %s (%s:%d) handed to %s", vm.name, vm.host, vm.port, self.client_address[0])
        self._send(200, "application/json", body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s %s", self.client_address[0], format % args)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ctx: ssl.SSLContext, launcher: Launcher) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        # The handshake happens in the request's thread, so one slow client holds up no other.
        self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.launcher = launcher

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        log.debug("request from %s failed", client_address[0], exc_info=True)


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port (0 for a free one): {text!r}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Serve the engine's console launcher page over HTTPS.")
    parser.add_argument("--root", type=Path, default=Path("/"), help="read every file below DIR (default /)")
    parser.add_argument("--listen", type=_address, default="127.0.0.1", metavar="ADDR",
                        help="the address to listen on (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=_port, default=8443, help="the HTTPS port (default 8443; 0: a free port)")
    parser.add_argument("--debug", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    root = Root(args.root)
    try:
        launcher = Launcher(root, load_vms(root))
        server = Server((args.listen, args.port), tls_context(root), launcher)
    except (LauncherError, TicketCommandError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: cannot listen on {args.listen} port {args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    host = f"[{args.listen}]" if ":" in args.listen else args.listen
    print(f"{PROG}: listening on https://{host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
