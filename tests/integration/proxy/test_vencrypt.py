"""VeNCrypt toward Xvnc with X509Vnc: the proxy verifies the VNC server's certificate (VNC_TLS_CA,
VNC_TLS_VERIFY_NAME) and refuses with 502 before any RFB byte reaches the browser."""
from __future__ import annotations

import asyncio
import re
import socket
import ssl
import struct
import threading
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.proxy.conftest import VNC_PASSWORD, stop
from tests.integration.proxy.rfb import RfbClient
from tests.proxy.pkitools import issue

pytestmark = pytest.mark.integration


def open_console(proxy, ticket: str) -> int | tuple[int, int]:
    """The framebuffer size after a VNC login, or the HTTP status of the refused upgrade."""
    async def run() -> int | tuple[int, int]:
        try:
            async with connect(proxy.url(ticket), ssl=proxy.ssl_context(), subprotocols=["binary"],
                               open_timeout=10) as ws:
                return await asyncio.wait_for(RfbClient(ws).login(VNC_PASSWORD), 10)
        except InvalidStatus as exc:
            return exc.response.status_code
    return asyncio.run(run())


def refused_total(proxy, reason: str) -> int:
    text = urllib.request.urlopen(f"https://localhost:{proxy.port}/metrics", context=proxy.ssl_context(),
                                  timeout=10).read().decode()
    match = re.search(rf'wsproxy_refused_total\{{reason="{reason}"\}} (\d+)', text)
    return int(match.group(1)) if match else 0


def assert_refused_once(proxy, reason: str) -> None:
    time.sleep(0.1)
    lines = [line for line in proxy.log().splitlines() if "refused " in line]
    assert len(lines) == 1 and f"refused {reason} (" in lines[0], lines
    assert "session" not in lines[0]
    assert refused_total(proxy, reason) == 1


def test_certificate_from_another_ca_is_refused(proxy, xvnc_tls_other_ca):
    assert open_console(proxy, proxy.ticket("127.0.0.1", xvnc_tls_other_ca.port, "--ssl-target")) == 502
    assert_refused_once(proxy, "target-tls-chain")


def test_engine_ca_certificate_for_another_name_is_refused(proxy, xvnc_tls_other_name):
    assert open_console(proxy, proxy.ticket("127.0.0.1", xvnc_tls_other_name.port, "--ssl-target")) == 502
    assert_refused_once(proxy, "target-tls-name")


def test_name_check_off_keeps_the_chain_check(proxy_factory, xvnc_tls_other_name, xvnc_tls_other_ca):
    proxy = proxy_factory("VNC_TLS_VERIFY_NAME=False\n")
    assert open_console(proxy, proxy.ticket("127.0.0.1", xvnc_tls_other_name.port, "--ssl-target")) == (320, 240)
    assert open_console(proxy, proxy.ticket("127.0.0.1", xvnc_tls_other_ca.port, "--ssl-target")) == 502
    assert_refused_once(proxy, "target-tls-chain")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_engine_ca_certificate_for_the_ticket_host_works(proxy, xvnc_tls, host):
    assert open_console(proxy, proxy.ticket(host, xvnc_tls.port, "--ssl-target")) == (320, 240)
    assert "refused" not in proxy.log()


class ClientCertVnc:
    """The VeNCrypt X509VNC preamble, then a TLS 1.2 server that requires a client certificate from the
    engine CA, as libvirt's `vnc_tls_x509_verify=1` does (Xvnc cannot ask for one)."""

    def __init__(self, pki) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # so a missing certificate fails the handshake itself
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(cafile=str(pki.ca_file))
        pair = issue(pki.ca, "localhost")
        cert, key = pki.root / "vnc.crt", pki.root / "vnc.key"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        self.ctx.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    conn.sendall(b"RFB 003.008\n")
                    conn.recv(12)
                    conn.sendall(b"\x01\x13")
                    conn.recv(1)
                    conn.sendall(b"\x00\x02")
                    conn.recv(2)
                    conn.sendall(b"\x00\x01" + struct.pack(">I", 261))
                    conn.recv(4)
                    conn.sendall(b"\x01")
                    with self.ctx.wrap_socket(conn, server_side=True) as tls:
                        self.handshakes.append(tls.getpeercert()["subject"][-1][0][1])
                        tls.sendall(b"\x00" * 16)  # the VNC authentication challenge
                        tls.recv(16)
                except (OSError, ssl.SSLError) as exc:
                    self.handshakes.append(f"failed: {exc}")

    def close(self) -> None:
        self.listener.close()


def upgrade_status(proxy, ticket: str) -> int:
    async def run() -> int:
        try:
            async with connect(proxy.url(ticket), ssl=proxy.ssl_context(), subprotocols=["binary"],
                               open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code
    return asyncio.run(run())


def test_client_certificate_for_servers_that_ask_for_one(proxy_factory, engine_root):
    server = ClientCertVnc(engine_root)
    try:
        proxy = proxy_factory()
        assert upgrade_status(proxy, proxy.ticket("127.0.0.1", server.port, "--ssl-target")) == 502
        assert "refused target-vencrypt (" in proxy.log()
        stop(proxy.proc)
        proxy = proxy_factory("VNC_TLS_CLIENT_CERT=/etc/pki/ovirt-engine/certs/websocket-proxy.cer\n"
                              "VNC_TLS_CLIENT_KEY=/etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass\n")
        assert upgrade_status(proxy, proxy.ticket("127.0.0.1", server.port, "--ssl-target")) == 101
        time.sleep(0.2)
        assert server.handshakes[0].startswith("failed: ") and server.handshakes[1] == "localhost"
    finally:
        server.close()
