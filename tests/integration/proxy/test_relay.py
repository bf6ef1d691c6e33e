"""The daemon relaying a real Xvnc through wss:// with tickets from engine-console-ticket."""
from __future__ import annotations

import asyncio
import base64
import re
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect

from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import RfbClient

pytestmark = pytest.mark.integration


async def _login(proxy, ticket: str, subprotocols=("binary",)) -> tuple[tuple[int, int], str | None]:
    async with connect(proxy.url(ticket), ssl=proxy.ssl_context(), subprotocols=list(subprotocols) or None,
                       open_timeout=10) as ws:
        size = await asyncio.wait_for(RfbClient(ws).login(VNC_PASSWORD), 10)
        return size, ws.subprotocol


def test_rfb_greeting_and_vnc_login_through_wss(proxy, xvnc):
    ticket = proxy.ticket("127.0.0.1", xvnc.port)
    assert asyncio.run(_login(proxy, ticket)) == ((320, 240), "binary")
    end = re.compile(rf"session \d+ end: peer 127.0.0.1 target 127.0.0.1:{xvnc.port} bytes to target \d+ "
                     r"to client \d+ duration")
    deadline = time.monotonic() + 5
    while not end.search(proxy.log()) and time.monotonic() < deadline:  # logged just after the close reply
        time.sleep(0.05)
    log = proxy.log()
    assert re.search(rf"session \d+ start: peer 127.0.0.1 target 127.0.0.1:{xvnc.port} subprotocol binary", log)
    assert end.search(log)
    assert ticket not in log and ticket[:40] not in log


def test_vencrypt_x509vnc_target(proxy, xvnc_tls):
    ticket = proxy.ticket("127.0.0.1", xvnc_tls.port, "--ssl-target")
    assert asyncio.run(_login(proxy, ticket))[0] == (320, 240)
    assert "(VeNCrypt)" in proxy.log()


def test_base64_subprotocol_for_old_clients(proxy, xvnc):
    async def run():
        async with connect(proxy.url(proxy.ticket("localhost", xvnc.port)), ssl=proxy.ssl_context(),
                           subprotocols=["base64"]) as ws:
            assert ws.subprotocol == "base64"
            greeting = await ws.recv()
            assert isinstance(greeting, str) and base64.b64decode(greeting) == b"RFB 003.008\n"
            await ws.send(base64.b64encode(b"RFB 003.008\n").decode())
            count = base64.b64decode(await ws.recv())
            assert count[0] >= 1
    asyncio.run(run())


def test_client_offering_no_subprotocol_is_served_binary(proxy, xvnc):
    assert asyncio.run(_login(proxy, proxy.ticket("127.0.0.1", xvnc.port), ()))[1] is None


def test_metrics_on_loopback(proxy, xvnc):
    asyncio.run(_login(proxy, proxy.ticket("127.0.0.1", xvnc.port)))
    ctx = proxy.ssl_context()
    text = urllib.request.urlopen(f"https://localhost:{proxy.port}/metrics", context=ctx, timeout=10).read().decode()
    assert "wsproxy_sessions_total 1" in text
    assert re.search(r'wsproxy_bytes_total\{direction="target_to_client"\} [1-9]', text)
    assert "# TYPE wsproxy_sessions_open gauge" in text


def test_metrics_off(proxy_factory):
    proxy = proxy_factory("METRICS=off\n")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"https://localhost:{proxy.port}/metrics", context=proxy.ssl_context(), timeout=10)
    assert info.value.code == 404
