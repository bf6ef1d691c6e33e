"""The proxy's resource limits against hostile clients, measured on the real daemon: memory from
/proc/<pid>/status, CPU from /proc/<pid>/stat, log lines counted."""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import struct
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.proxy.conftest import process_tree
from tests.integration.proxy.wsraw import client_frame, open_upgrade, read_frames

pytestmark = pytest.mark.integration
PING, PONG = 0x9, 0xA


def rss_kib(pid: int) -> int:
    """Resident memory of the supervisor and its workers."""
    total = 0
    for each in process_tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def test_pings_without_reading_do_not_grow_memory(proxy, xvnc):
    """Up to 100,000 pings from a client that never reads: the proxy stops reading it once its pongs
    fill the session's buffer, so memory stays flat, and every pong arrives once the client reads."""
    sock = open_upgrade(proxy.port, proxy.ca_file, proxy.ticket("127.0.0.1", xvnc.port))
    with sock:
        time.sleep(0.3)
        before = rss_kib(proxy.proc.pid)
        batch = client_frame(PING, b"p" * 125) * 100
        sock.settimeout(2)
        sent = 0
        try:
            while sent < 100_000:
                sock.sendall(batch)
                sent += 100
        except TimeoutError:
            pass  # the proxy stopped reading: what the fix is about
        time.sleep(0.5)
        grown = rss_kib(proxy.proc.pid) - before
        assert grown < 4 * 1024, f"RSS grew by {grown} KiB after {sent} pings"
        assert proxy.proc.poll() is None
        pongs, buffer = 0, bytearray()
        sock.settimeout(10)
        while pongs < sent:
            pongs += sum(1 for opcode, _ in read_frames(sock, buffer) if opcode == PONG)
        assert pongs >= sent


def test_frame_above_max_frame_size_closes_with_1009(proxy_factory, xvnc):
    proxy = proxy_factory("MAX_FRAME_SIZE=4096\n")
    with open_upgrade(proxy.port, proxy.ca_file, proxy.ticket("127.0.0.1", xvnc.port)) as sock:
        sock.sendall(client_frame(0x2, b"x" * 4097)[:1000])  # the header announces too much: refused at once
        frames, buffer = [], bytearray()
        while not any(opcode == 0x8 for opcode, _ in frames):
            frames += read_frames(sock, buffer)
    close = [payload for opcode, payload in frames if opcode == 0x8][0]
    assert struct.unpack(">H", close[:2])[0] == 1009


def metrics_status(proxy, timeout: float) -> int:
    with urllib.request.urlopen(f"https://localhost:{proxy.port}/metrics", context=proxy.ssl_context(),
                                timeout=timeout) as answer:
        return answer.status


def test_max_handshakes_pauses_accepting_until_one_ends(proxy_factory):
    proxy = proxy_factory("MAX_HANDSHAKES=4\n")
    idle = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(4)]
    time.sleep(0.3)
    with pytest.raises((TimeoutError, ssl.SSLError, OSError)):
        metrics_status(proxy, timeout=1)
    idle.pop().close()
    assert metrics_status(proxy, timeout=5) == 200
    for sock in idle:
        sock.close()


def test_handshake_timeout_closes_a_silent_connection(proxy_factory):
    proxy = proxy_factory("HANDSHAKE_TIMEOUT=1\n")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""
        assert 0.8 < time.monotonic() - start < 3


def cpu_seconds(pid: int) -> float:
    """utime + stime of the supervisor and its workers."""
    total = 0
    for each in process_tree(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_accepting_and_recovers(proxy_factory):
    """Under a 64-descriptor limit, 100 idle connections: accepting pauses instead of spinning on a
    readable listener, one log line, little CPU; once they go, the proxy serves again by itself."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    proxy = proxy_factory(prefix=("prlimit", "--nofile=64", "--"))
    cpu_before = cpu_seconds(proxy.proc.pid)
    idle = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(100)]
    time.sleep(3)
    cpu = cpu_seconds(proxy.proc.pid) - cpu_before
    lines = [line for line in proxy.log().splitlines() if "accept failed" in line]
    workers = process_tree(proxy.proc.pid)[1:]
    pids = {line.split("wsproxy[")[1].split("]")[0] for line in lines}
    assert len(lines) == len(pids) <= len(workers), lines[:3]  # one line per worker that hit the limit
    assert "Too many open files" in lines[0], lines[:3]
    assert cpu < 0.5, f"{cpu:.2f}s of CPU in 3s"
    for sock in idle:
        sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert metrics_status(proxy, timeout=2) == 200
            break
        except (OSError, ssl.SSLError):
            assert time.monotonic() < deadline, "the proxy did not recover"
    assert proxy.proc.poll() is None
