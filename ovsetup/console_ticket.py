"""`engine-console-ticket [--root DIR] --host H --port P [--ssl-target] [--lifetime 120] [--url]`.

The engine side: signs a console ticket with `keys/engine.p12`. The store password is read from the
0600 file engine-setup writes (`engine.conf.d/10-setup-pki.conf`), never from the command line.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from ovcommon import ticket
from ovcommon.configfile import ConfigSyntaxError, load_files
from ovcommon.errors import Error, entry
from ovcommon.paths import ENGINE_PKI_CONFIG, ENGINE_PROTOCOLS_CONFIG, ENGINE_STORE, Root

PROG = "engine-console-ticket"
PASSWORD_KEY = "ENGINE_PKI_ENGINE_STORE_PASSWORD"


class TicketCommandError(Error):
    """A problem the user can act on, printed as one line."""


def _setting(root: Root, file: str | os.PathLike[str], key: str) -> str:
    path = root.path(file)
    try:
        value = load_files([path]).get(key) if path.exists() else None
    except (OSError, ConfigSyntaxError) as exc:
        raise TicketCommandError(f"cannot read {path}: {exc}") from None
    if not value:
        raise TicketCommandError(f"{key} is not set in {path}; run engine-setup first")
    return value


def store_password(root: Root) -> str:
    return _setting(root, ENGINE_PKI_CONFIG, PASSWORD_KEY)


def bracket(host: str) -> str:
    """An IPv6 address in brackets, as a URL needs it."""
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]"
    except ValueError:
        pass
    return host


def proxy_address(root: Root, vm_host: str) -> str:
    """`host:port` of the proxy from the engine option WebSocketProxy."""
    from ovsetup.options import open_store  # the engine option store (setup core)

    try:
        value = open_store(root).get("WebSocketProxy").strip()
    except Exception as exc:  # the store's own errors (missing database, SQL) end as one line
        raise TicketCommandError(f"cannot read the WebSocketProxy option: {exc}") from None
    if value.lower() == "off" or not value:
        raise TicketCommandError("WebSocketProxy is Off: no proxy is configured (engine-setup configures one)")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TicketCommandError(f"WebSocketProxy value {value!r} is not <host>:<port>")
    if host == "Engine":
        host = _setting(root, ENGINE_PROTOCOLS_CONFIG, "ENGINE_FQDN")
    elif host == "Host":
        host = vm_host
    if not host.startswith("["):
        host = bracket(host)
    return f"{host}:{port}"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return int(text)


def _lifetime(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 86400:
        raise argparse.ArgumentTypeError(f"not a lifetime in seconds (1..86400): {text!r}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Sign a noVNC console ticket as the engine does.")
    parser.add_argument("--root", type=Path, default=Path("/"), help="read every file below DIR (default /)")
    parser.add_argument("--host", required=True, help="the VNC server's host name or address")
    parser.add_argument("--port", required=True, type=_port, help="the VNC server's port")
    parser.add_argument("--ssl-target", action="store_true", help="the VNC server wants VeNCrypt X509VNC")
    parser.add_argument("--lifetime", type=_lifetime, default=120, help="seconds the ticket is valid (120)")
    parser.add_argument("--url", action="store_true", help="print wss://<proxy>/<ticket> from WebSocketProxy")
    return parser.parse_args(argv)


@entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Root(args.root)
    if not ticket.valid_host(args.host):
        raise TicketCommandError(f"--host {args.host!r} is not a host name or address")
    address = proxy_address(root, args.host) if args.url else ""
    try:
        key, cert = ticket.load_engine_store(root.path(ENGINE_STORE), store_password(root))
    except (OSError, ValueError) as exc:
        raise TicketCommandError(f"cannot open the engine key store {root.path(ENGINE_STORE)}: {exc}") from None
    signed = ticket.sign(ticket.encode_data(args.host, args.port, args.ssl_target), key, cert, args.lifetime)
    print(f"wss://{address}/{signed}" if args.url else signed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
