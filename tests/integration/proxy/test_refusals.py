"""Each refusal the issue lists, through the real daemon: an HTTP error before any upgrade, one log
line with the reason and the peer (never the ticket), and not one byte to the VNC server."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ovcommon import ticket as tk
from tests.proxy.test_ticket import forge

pytestmark = pytest.mark.integration


def status_of(proxy, ticket: str, **kwargs) -> int:
    async def run() -> int:
        try:
            async with connect(proxy.url(ticket), ssl=proxy.ssl_context(), subprotocols=["binary"],
                               open_timeout=10, **kwargs):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code
    return asyncio.run(run())


def fields(host: str, port: int, start: float | None = None, lifetime: int = 120) -> dict:
    start = time.time() if start is None else start
    return {"salt": base64.b64encode(b"abcdefgh").decode(), "validFrom": tk.format_time(start),
            "validTo": tk.format_time(start + lifetime), "data": tk.encode_data(host, port, False)}


def assert_refused(proxy, canary, ticket: str, reason: str, status: int = 403, **kwargs) -> None:
    assert status_of(proxy, ticket, **kwargs) == status
    time.sleep(0.1)
    log = proxy.log()
    assert f"refused {reason} " in log and "from 127.0.0.1" in log
    assert ticket[10:60] not in log
    assert canary.connections == 0


def test_wrong_signing_key(proxy, canary, foreign):
    assert_refused(proxy, canary, forge(foreign, fields("127.0.0.1", canary.port)), "ticket-signature")


def test_tampered_data(proxy, canary):
    doc = json.loads(base64.b64decode(proxy.ticket("127.0.0.1", 5900)))
    doc["data"] = tk.encode_data("127.0.0.1", canary.port, False)
    assert_refused(proxy, canary, base64.b64encode(json.dumps(doc).encode()).decode(), "ticket-signature")


def test_repackaged_signed_fields(proxy, canary):
    doc = json.loads(base64.b64decode(proxy.ticket("127.0.0.1", 5900)))
    blob = "".join(doc[name] for name in tk.SIGNED_FIELDS)
    doc.update(salt=blob, signedFields="salt", data=tk.encode_data("127.0.0.1", canary.port, False),
               validTo=tk.format_time(time.time() + 86400))
    assert_refused(proxy, canary, base64.b64encode(json.dumps(doc).encode()).decode(), "ticket-signed-fields")


def test_expired(proxy, canary):
    ticket = forge(proxy.pki.engine, fields("127.0.0.1", canary.port, start=time.time() - 200, lifetime=120))
    assert_refused(proxy, canary, ticket, "ticket-expired")


def test_not_yet_valid_beyond_the_skew(proxy, canary):
    ticket = forge(proxy.pki.engine, fields("127.0.0.1", canary.port, start=time.time() + 60))
    assert_refused(proxy, canary, ticket, "ticket-not-yet-valid")


def test_replayed(proxy, canary):
    ticket = proxy.ticket("127.0.0.1", canary.port)
    assert status_of(proxy, ticket) == 101
    time.sleep(0.1)
    assert canary.connections == 1
    assert status_of(proxy, ticket) == 403
    time.sleep(0.1)
    assert canary.connections == 1
    assert "refused ticket-replayed " in proxy.log()


def test_target_outside_allowed_targets(proxy_factory, canary):
    proxy = proxy_factory("ALLOWED_TARGETS=10.0.0.0/8\n")
    assert_refused(proxy, canary, proxy.ticket("127.0.0.1", canary.port), "target-not-allowed")


def test_target_port_outside_allowed_ports(proxy_factory, canary):
    proxy = proxy_factory("ALLOWED_TARGETS=127.0.0.0/8\nALLOWED_TARGET_PORTS=5900-5999\n")
    assert_refused(proxy, canary, proxy.ticket("localhost", canary.port), "target-not-allowed")


def test_foreign_origin(proxy, canary):
    assert_refused(proxy, canary, proxy.ticket("127.0.0.1", canary.port), "origin",
                   origin="https://evil.example")


def test_own_origin_is_allowed(proxy, canary):
    assert status_of(proxy, proxy.ticket("127.0.0.1", canary.port), origin=f"https://localhost:{proxy.port}") == 101


def test_listed_origin_is_allowed(proxy_factory, canary):
    proxy = proxy_factory("ALLOWED_ORIGINS=https://engine.example\n")
    assert status_of(proxy, proxy.ticket("127.0.0.1", canary.port), origin="https://engine.example") == 101


def test_plain_ws_when_ssl_only(proxy, canary):
    ticket = proxy.ticket("127.0.0.1", canary.port)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(f"GET /{ticket} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 403 ")
    time.sleep(0.1)
    assert "refused plain-http " in proxy.log()
    assert canary.connections == 0


def test_plain_ws_allowed_without_ssl_only(proxy_factory, canary):
    proxy = proxy_factory("SSL_ONLY=False\n")

    async def run() -> None:
        async with connect(proxy.url(proxy.ticket("127.0.0.1", canary.port), "ws"), subprotocols=["binary"]) as ws:
            assert await ws.recv() == b"RFB 003.008\n"
    asyncio.run(run())


def test_kubevirt_ticket_unsupported(proxy, canary):
    data = urllib.parse.quote(json.dumps({"host": "127.0.0.1", "port": str(canary.port), "ssl_target": False,
                                          "path": "/x", "token": "t"}))
    assert_refused(proxy, canary, forge(proxy.pki.engine, {**fields("h", 1), "data": data}), "ticket-unsupported")


def test_plain_http_get_without_upgrade(proxy, canary):
    ticket = proxy.ticket("127.0.0.1", canary.port)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"https://localhost:{proxy.port}/{ticket}", context=proxy.ssl_context(), timeout=10)
    assert info.value.code == 404
    assert canary.connections == 0
