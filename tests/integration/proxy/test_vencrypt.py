"""VeNCrypt toward Xvnc with X509Vnc: the proxy verifies the VNC server's certificate (VNC_TLS_CA,
VNC_TLS_VERIFY_NAME) and refuses with 502 before any RFB byte reaches the browser."""
from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import RfbClient

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
