"""The issue's end-to-end: engine-setup configures the proxy below a --root, the daemon runs on that
configuration, engine-console-ticket signs with the engine's store, and a WebSocket client that trusts
only the engine CA gets the RFB greeting of a real Xvnc through wss://."""
from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest
from websockets.asyncio.client import connect

from tests.integration.proxy.conftest import VNC_PASSWORD, command, free_port, stop, wait_port
from tests.integration.proxy.rfb import RfbClient

pytestmark = pytest.mark.integration


def test_engine_setup_then_proxy_then_console(tmp_path, xvnc):
    root = tmp_path / "root"
    root.mkdir()
    port = free_port()
    env = ("OVESETUP_CONFIG/websocketProxyConfig=bool:True OVESETUP_CONFIG/fqdn=str:localhost "
           f"OVESETUP_CONFIG/websocketProxyPort=int:{port}")
    setup = subprocess.run([*command("engine-setup"), "--root", str(root), "--accept-defaults",
                            f"--otopi-environment={env}"], capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    proc = subprocess.Popen([*command("ovirt-websocket-proxy"), "--root", str(root), "start"],
                            stderr=(tmp_path / "proxy.log").open("wb"))
    try:
        wait_port(port, proc)
        url = subprocess.run([*command("engine-console-ticket"), "--root", str(root), "--host", "127.0.0.1",
                              "--port", str(xvnc.port), "--url"], capture_output=True, text=True, timeout=30)
        assert url.returncode == 0, url.stderr
        assert url.stdout.startswith(f"wss://localhost:{port}/eyJ")

        async def run() -> tuple[int, int]:
            ctx = ssl.create_default_context(cafile=str(root / "etc/pki/ovirt-engine/ca.pem"))
            async with connect(url.stdout.strip(), ssl=ctx, subprotocols=["binary"]) as ws:
                return await RfbClient(ws).login(VNC_PASSWORD)

        assert asyncio.run(run()) == (320, 240)
    finally:
        stop(proc)
    assert url.stdout.strip().split("/")[-1][:40] not in (tmp_path / "proxy.log").read_text()
