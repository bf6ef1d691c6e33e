"""sd_notify beyond READY, without systemd: STATUS= counts open sessions, WATCHDOG=1 is sent while the event
loop runs and stops when it is stopped (kill -STOP), so systemd's watchdog can restart a hung proxy."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable

import pytest
from websockets.asyncio.client import connect

from tests.integration.proxy.conftest import (  # noqa: F401 (fixtures)
    ProxyProcess,
    command,
    engine_ca,
    engine_root,
    stop,
    wait_port,
    xvnc,
)
from tests.integration.proxy.rfb import RfbClient

pytestmark = pytest.mark.integration


def messages(listener: socket.socket, seconds: float) -> list[str]:
    """Every notification received during `seconds`."""
    out, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        listener.settimeout(left)
        try:
            out.append(listener.recv(4096).decode())
        except TimeoutError:
            break
    return out


def lines(received: list[str]) -> set[str]:
    return {line for message in received for line in message.split("\n")}


def has_status(received: Iterable[str], prefix: str) -> bool:
    return any(line.startswith(f"STATUS={prefix}") for line in received)


def test_status_counts_sessions_and_the_watchdog_is_fed_by_the_loop(engine_root, xvnc, tmp_path):  # noqa: F811
    address = str(tmp_path / "notify.sock")
    port = int((engine_root.root / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf").read_text()
               .split("PROXY_PORT=")[1].split()[0])
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(10)
        log = tmp_path / "proxy.log"
        proc = subprocess.Popen([*command("ovirt-websocket-proxy"), "--root", str(engine_root.root), "--systemd=notify",
                                 "start"], env={**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"},
                                stderr=log.open("wb"))
        try:
            ready = listener.recv(4096).decode().split("\n")
            assert ready[0] == "READY=1" and has_status(ready, f"Listening on port {port}; 0 open sessions; version ")
            wait_port(port, proc)
            fed = messages(listener, 1.0)
            assert 3 <= sum(m == "WATCHDOG=1" for m in fed) <= 8, fed  # every 0.2 s: half of WatchdogSec

            proxy = ProxyProcess(engine_root.root, port, proc, log, engine_root)

            async def one_session() -> list[str]:
                async with connect(proxy.url(proxy.ticket("127.0.0.1", xvnc.port)), ssl=proxy.ssl_context(),
                                   subprotocols=["binary"]) as ws:
                    await RfbClient(ws).read(12)
                    return await asyncio.to_thread(messages, listener, 0.6)

            during = lines(asyncio.run(one_session()))
            assert has_status(during, f"Listening on port {port}; 1 open session; ")
            assert has_status(lines(messages(listener, 0.6)), f"Listening on port {port}; 0 open sessions; ")

            os.kill(proc.pid, signal.SIGSTOP)  # a hung loop: no more pings
            assert messages(listener, 0.8) == []
            os.kill(proc.pid, signal.SIGCONT)
            assert "WATCHDOG=1" in messages(listener, 0.5)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            stop(proc)
