"""Shared helpers: run our installed commands as a user would."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def command(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


ENGINE_ENV = ("OVESETUP_CONFIG/websocketProxyConfig=bool:True "
              "OVESETUP_CONFIG/fqdn=str:engine.example.test")


def run(name: str, *args: str, input: str | None = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([command(name), *args], input=input, capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def engine_setup():
    def setup(root: Path, *args: str, input: str | None = "", env: dict | None = None):
        return run("engine-setup", "--root", str(root), *args, input=input, env=env)
    return setup


def tree(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file below root with its bytes, mode and mtime (ns)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def tls_handshake(cert: Path, key: Path, ca: Path, server_name: str) -> dict:
    """A real TLS handshake on loopback: serve cert/key, connect verifying against ca for server_name.

    Returns the peer certificate as the client's `ssl` stack saw it (raises if verification fails)."""
    import socket
    import ssl
    import threading

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            peer = tls.getpeercert()
            tls.sendall(b"x")
    finally:
        thread.join(5)
        listener.close()
    return peer
