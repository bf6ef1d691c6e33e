"""The daemon's life: start-up errors as one line, SIGHUP reload, SIGTERM, --background, systemd notify."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import pytest
from websockets.asyncio.client import connect

from tests.integration.proxy.conftest import VNC_PASSWORD, command, free_port, stop, wait_port
from tests.integration.proxy.rfb import RfbClient
from tests.proxy.pkitools import write_override

pytestmark = pytest.mark.integration


def run_daemon(root, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*command("ovirt-websocket-proxy"), "--root", str(root), *args], capture_output=True,
                          text=True, timeout=20, env=env)


@pytest.mark.parametrize(("text", "key"), [
    ("SSL_KEY=/etc/pki/ovirt-engine/keys/nothing.key\n", "SSL_KEY"),
    ("CERT_FOR_DATA_VERIFICATION=/etc/pki/ovirt-engine/certs/nothing.cer\n", "CERT_FOR_DATA_VERIFICATION"),
    ("PROXY_PORT=sixty\n", "PROXY_PORT"),
    ("SSL_CERTIFICATE=\n", "SSL_CERTIFICATE"),
])
def test_bad_config_stops_start_up_with_one_line(engine_root, text, key):
    write_override(engine_root.root, text)
    result = run_daemon(engine_root.root)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ovirt-websocket-proxy: {key}: ")


HOSTILE_VALUES = [("PROXY_PORT=²\n".encode(), "PROXY_PORT"),
                  (b"PROXY_HOST=*\nALLOWED_ORIGINS=https://caf\xe9.example\n", "ALLOWED_ORIGINS"),
                  (b"SSL_CIPHERS=HIGH\x00:!aNULL\n", "SSL_CIPHERS")]


@pytest.mark.parametrize(("data", "key"), HOSTILE_VALUES)
def test_hostile_value_stops_start_up_with_one_line_naming_file_and_key(engine_root, data, key):
    path = write_override(engine_root.root, "")
    path.write_bytes(data)
    result = run_daemon(engine_root.root)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ovirt-websocket-proxy: {key}: ") and str(path) in lines[0], lines


def test_sighup_with_hostile_values_keeps_the_running_configuration(proxy):
    for data, key in HOSTILE_VALUES:
        write_override(proxy.root, "", "30-bad.conf").write_bytes(data)
        proxy.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert f"reload failed, keeping the running configuration: {key}: " in proxy.log()
        assert proxy.proc.poll() is None
        wait_port(proxy.port)
    assert "Traceback" not in proxy.log()


def test_port_in_use(engine_root):
    with socket.socket(socket.AF_INET6) as busy:
        busy.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        busy.bind(("::", 0))
        busy.listen()
        write_override(engine_root.root, f"PROXY_PORT={busy.getsockname()[1]}\n")
        result = run_daemon(engine_root.root)
    assert result.returncode != 0
    assert result.stderr.startswith("ovirt-websocket-proxy: PROXY_PORT: cannot listen")


def test_unknown_key_is_a_warning(proxy_factory):
    proxy = proxy_factory("SOME_NEW_KEY=1\n")
    time.sleep(0.2)
    assert "SOME_NEW_KEY: unknown key, ignored" in proxy.log()


def test_sighup_rebinds_a_changed_port_without_dropping_sessions(proxy, xvnc):
    new_port = free_port()

    async def run() -> None:
        async with connect(proxy.url(proxy.ticket("127.0.0.1", xvnc.port)), ssl=proxy.ssl_context(),
                           subprotocols=["binary"]) as ws:
            client = RfbClient(ws)
            assert await client.read(12) == b"RFB 003.008\n"
            write_override(proxy.root, f"PROXY_PORT={new_port}\n", "30-port.conf")
            proxy.proc.send_signal(signal.SIGHUP)
            await asyncio.to_thread(wait_port, new_port)
            client.buffer = b"RFB 003.008\n" + client.buffer
            assert await client.login(VNC_PASSWORD) == (320, 240)
    asyncio.run(run())
    assert "configuration reloaded" in proxy.log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()


def test_sighup_with_a_bad_config_keeps_running(proxy, xvnc):
    write_override(proxy.root, "PROXY_PORT=nope\n", "30-bad.conf")
    proxy.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert "reload failed, keeping the running configuration: PROXY_PORT:" in proxy.log()
    assert proxy.proc.poll() is None
    wait_port(proxy.port)


def test_sigterm_closes_cleanly(proxy):
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(10) == 0
    assert "stopped" in proxy.log()


def test_background_with_pidfile(engine_root, tmp_path):
    pidfile = tmp_path / "proxy.pid"
    result = run_daemon(engine_root.root, "--background", "--pidfile", str(pidfile), "start")
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    try:
        port = int((engine_root.root / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf")
                   .read_text().split("PROXY_PORT=")[1].split()[0])
        wait_port(port)
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pidfile.exists()


def test_systemd_notify(engine_root, tmp_path):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(10)
        proc = subprocess.Popen([*command("ovirt-websocket-proxy"), "--root", str(engine_root.root),
                                 "--systemd=notify", "start"], env={**os.environ, "NOTIFY_SOCKET": address},
                                stderr=subprocess.DEVNULL)
        try:
            assert listener.recv(1024).startswith(b"READY=1")
        finally:
            stop(proc)
        assert listener.recv(1024) == b"STOPPING=1"
