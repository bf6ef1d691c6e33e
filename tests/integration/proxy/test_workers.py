"""WORKERS and the hand-over, for real: the daemon's processes, real TLS, a real TCP echo target."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.proxy.conftest import ProxyProcess, process_tree, start_proxy, write_override

pytestmark = pytest.mark.integration


def metrics(proxy: ProxyProcess) -> str:
    ctx = ssl.create_default_context(cafile=str(proxy.ca_file))
    with urllib.request.urlopen(f"https://localhost:{proxy.port}/metrics", context=ctx, timeout=10) as answer:
        return answer.read().decode()


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def serving_pid(proxy: ProxyProcess) -> int:
    """The main process of the generation that answered this connection."""
    return int(re.search(r'wsproxy_build_info\{version="[^"]*",pid="(\d+)"\} 1', metrics(proxy)).group(1))


async def echoes(ws: ClientConnection, payload: bytes) -> None:
    await ws.send(payload)
    got = b""
    while len(got) < len(payload):
        got += await asyncio.wait_for(ws.recv(), 10)
    assert got == payload


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def workers_of(proxy: ProxyProcess) -> list[int]:
    return process_tree(proxy.proc.pid)[1:]


@pytest.fixture
def two_workers(engine_root, tmp_path) -> Iterator[ProxyProcess]:
    write_override(engine_root.root, "WORKERS=2\n", "25-workers.conf")
    proxy = start_proxy(engine_root, tmp_path, "--pidfile", str(tmp_path / "proxy.pid"))
    wait_for(lambda: len(workers_of(proxy)) == 2, "two workers")
    yield proxy
    end(proxy, tmp_path / "proxy.pid")


def end(proxy: ProxyProcess, pidfile: Path | None = None) -> None:
    """SIGTERM the proxy's processes, and a successor's (the pidfile's) if one took over."""
    mains = [proxy.proc.pid]
    if pidfile is not None and pidfile.exists():
        mains.append(int(pidfile.read_text()))
    mains += [int(pid) for pid in re.findall(r"hand-over: successor (\d+)", proxy.log())]
    for pid in {each for main in mains for each in process_tree(main)}:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    proxy.proc.wait(10)


def session_pids(proxy: ProxyProcess) -> list[int]:
    """Which process logged each session's start, in order."""
    return [int(pid) for pid in re.findall(r"wsproxy\[(\d+)\]: session \d+ start", proxy.log())]


def test_workers_share_the_port_and_metrics_count_the_whole_proxy(two_workers, echo):
    proxy = two_workers

    async def run() -> None:
        opened = [await connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                                subprotocols=["binary"]) for _ in range(12)]
        for ws in opened:
            await echoes(ws, os.urandom(1000))
        text = await asyncio.to_thread(metrics, proxy)
        assert metric(text, "wsproxy_sessions_open") == 12
        assert metric(text, "wsproxy_workers") == 2
        assert metric(text, 'wsproxy_bytes_total{direction="client_to_target"}') == 12000
        for ws in opened:
            await ws.close()

    asyncio.run(run())
    owners = session_pids(proxy)
    assert set(owners) == set(workers_of(proxy))
    assert max(owners.count(pid) for pid in set(owners)) <= 7, owners  # spread: no worker takes most
    wait_for(lambda: metric(metrics(proxy), "wsproxy_sessions_open") == 0, "sessions to end")
    assert metric(metrics(proxy), "wsproxy_sessions_total") == 12


def test_a_ticket_opens_one_session_whichever_worker_serves_it(two_workers, echo):
    proxy = two_workers
    ticket = proxy.ticket("127.0.0.1", echo.port)

    async def run() -> None:
        async with connect(proxy.url(ticket), ssl=proxy.ssl_context(), subprotocols=["binary"]) as ws:
            await echoes(ws, b"first")
            for _ in range(8):  # the kernel hands these to either worker
                with pytest.raises(InvalidStatus) as refused:
                    await connect(proxy.url(ticket), ssl=proxy.ssl_context(), subprotocols=["binary"])
                assert refused.value.response.status_code == 403

    asyncio.run(run())
    assert metric(metrics(proxy), 'wsproxy_refused_total{reason="ticket-replayed"}') == 8


def test_max_sessions_is_for_the_whole_proxy(engine_root, tmp_path, echo):
    write_override(engine_root.root, "WORKERS=2\nMAX_SESSIONS=3\n", "25-workers.conf")
    proxy = start_proxy(engine_root, tmp_path)
    try:
        async def run() -> None:
            opened = [await connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                                    subprotocols=["binary"]) for _ in range(3)]
            for _ in range(4):
                with pytest.raises(InvalidStatus) as refused:
                    await connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                                  subprotocols=["binary"])
                assert refused.value.response.status_code == 503
            for ws in opened:
                await ws.close()

        asyncio.run(run())
    finally:
        end(proxy)


def test_a_killed_worker_is_replaced_and_the_other_keeps_its_sessions(two_workers, echo):
    proxy = two_workers

    async def run() -> None:
        opened = [await connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                                subprotocols=["binary"]) for _ in range(6)]
        owners = session_pids(proxy)
        victim = owners[0]
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(wait_for, lambda: victim not in workers_of(proxy) and len(workers_of(proxy)) == 2,
                                "a new worker")
        for ws, owner in zip(opened, owners, strict=True):
            if owner == victim:
                with pytest.raises(ConnectionClosed):
                    await echoes(ws, b"gone")
            else:
                await echoes(ws, b"still here")
        async with connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                           subprotocols=["binary"]) as ws:
            await echoes(ws, b"new session")
        assert f"worker {victim} was killed by SIGKILL: starting another" in proxy.log()

    asyncio.run(run())
    text = metrics(proxy)
    assert metric(text, "wsproxy_sessions_total") == 7


def test_hand_over_keeps_every_session_and_refuses_nothing(two_workers, echo, tmp_path):
    """SIGUSR2 under traffic: the sessions opened before keep echoing byte for byte through the hand-over,
    connections arriving meanwhile are all served, the successor is the main process (pidfile, /metrics),
    a ticket used before is still refused, and the old processes exit once their sessions end."""
    proxy = two_workers
    old = set(process_tree(proxy.proc.pid))
    used = proxy.ticket("127.0.0.1", echo.port)
    pidfile = tmp_path / "proxy.pid"

    async def traffic(ws: ClientConnection, stop: asyncio.Event) -> int:
        rounds = 0
        while not stop.is_set():
            await echoes(ws, os.urandom(1 + rounds % 5000))
            rounds += 1
        return rounds

    async def arrivals(stop: asyncio.Event) -> tuple[int, list[str]]:
        served, failures = 0, []
        while not stop.is_set():
            try:
                async with connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                                   subprotocols=["binary"], open_timeout=10) as ws:
                    await echoes(ws, b"hello")
                served += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(f"{type(exc).__name__}: {exc}")
        return served, failures

    async def run() -> None:
        first = await connect(proxy.url(used), ssl=proxy.ssl_context(), subprotocols=["binary"])
        opened = [first] + [await connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                                          subprotocols=["binary"]) for _ in range(9)]
        stop = asyncio.Event()
        flows = [asyncio.create_task(traffic(ws, stop)) for ws in opened]
        arriving = asyncio.create_task(arrivals(stop))
        await asyncio.sleep(0.5)
        proxy.proc.send_signal(signal.SIGUSR2)
        await asyncio.to_thread(wait_for, lambda: "hand-over: successor" in proxy.log(), "the successor")
        await asyncio.sleep(1.0)
        stop.set()
        rounds = await asyncio.gather(*flows)
        served, failures = await arriving
        assert failures == [] and served > 0
        assert all(count > 0 for count in rounds)
        new = int(pidfile.read_text())
        assert new not in old and serving_pid(proxy) == new
        with pytest.raises(InvalidStatus):
            await connect(proxy.url(used), ssl=proxy.ssl_context(), subprotocols=["binary"])
        for ws in opened:
            await echoes(ws, b"after the hand-over")
        assert all(pid_alive(pid) for pid in old)  # they still serve these
        for ws in opened:
            await ws.close()
        await asyncio.to_thread(wait_for, lambda: not any(pid_alive(pid) for pid in old), "the old processes to exit")
        assert f"hand-over: successor {new} is listening; draining 10 open sessions" in proxy.log()
        assert f"hand-over: old process {proxy.proc.pid} drained; exiting" in proxy.log()
        os.kill(new, signal.SIGTERM)
        await asyncio.to_thread(wait_for, lambda: not pid_alive(new), "the successor to stop")

    asyncio.run(run())
    assert proxy.proc.returncode == 0 or proxy.proc.wait(5) == 0


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_successor_that_cannot_start_leaves_the_proxy_serving(two_workers, echo):
    proxy = two_workers
    write_override(proxy.root, "MAX_SESSIONS=zero\n", "90-broken.conf")
    proxy.proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: "hand-over failed" in proxy.log(), "the failure")
    line = [line for line in proxy.log().splitlines() if "hand-over failed" in line][0]
    assert "exited with status 1 before it listened; this one keeps serving" in line
    assert serving_pid(proxy) == proxy.proc.pid

    async def run() -> None:
        async with connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                           subprotocols=["binary"]) as ws:
            await echoes(ws, b"still serving")

    asyncio.run(run())


def test_drain_timeout_closes_what_is_left(engine_root, tmp_path, echo):
    write_override(engine_root.root, "WORKERS=1\nDRAIN_TIMEOUT=1\n", "25-workers.conf")
    proxy = start_proxy(engine_root, tmp_path)

    async def run() -> None:
        async with connect(proxy.url(proxy.ticket("127.0.0.1", echo.port)), ssl=proxy.ssl_context(),
                           subprotocols=["binary"]) as ws:
            await echoes(ws, b"before")
            proxy.proc.send_signal(signal.SIGUSR2)
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await echoes(ws, b"x")
                    await asyncio.sleep(0.05)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001, proxy.log()
            assert 0.5 < time.monotonic() - started < 10

    try:
        asyncio.run(run())
        proxy.proc.wait(10)
        assert "drain time over: closing 1 sessions" in proxy.log()
    finally:
        end(proxy)
