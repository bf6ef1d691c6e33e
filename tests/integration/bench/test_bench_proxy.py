"""scripts/bench-proxy --quick runs end to end: figures for every peer, WORKERS=1 against WORKERS=2, the
hand-over scenario, and a byte-exact relay. Only that the figures are printed, never what they are."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from wsproxy.config import KNOWN_KEYS

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench-proxy"
PEERS = ("raw TCP", "ovirt-websocket-proxy", "websockify", "websocat")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}


def test_quick_run_prints_figures_for_every_peer(cache: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, env=cache,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for peer in PEERS:
        for direction in ("VNC->client", "client->VNC"):
            for conns in (1, 4):
                assert re.search(rf"^\| {re.escape(peer)} \| {direction} \| {conns} \| \d+ \|", out, re.M), (peer, out)
        assert re.search(rf"^\| {re.escape(peer)} \| \d+\.\d+ \| \d+\.\d+ \|", out, re.M), (peer, out)
    assert re.search(r"^\| CPU per MiB, VNC->client, 1 conn \| \d+\.\d+x \| \d+\.\d+x \|", out, re.M), out
    for workers in (1, 2):
        for direction in ("VNC->client", "client->VNC"):
            assert re.search(rf"^\| {workers} \| {direction} \| 4 \| \d+ \| \d+\.\d+ \| [\d+]+ \|", out, re.M), out
    assert re.search(r"^\| CPU per MiB, VNC->client, 4 conn \| \d+\.\d+x \| <= 1\.1x \|", out, re.M), out
    if "WORKERS" in KNOWN_KEYS:  # the hand-over comes with WORKERS
        assert re.search(r"^\| new connections refused or failed \| \d+ of \d+ \|", out, re.M), out
        assert re.search(r"^\| held sessions dropped \| \d+ of 50 \|", out, re.M), out
        assert re.search(r"^\| signal to a new connection answered by the successor .* \| [\d.-]+ s \|", out, re.M), out
        assert re.search(r"^\| old main process exited, after its last session closed \| ", out, re.M), out
    assert "Relay byte-exact: every byte each peer relayed was checked" in out


def _load_script(monkeypatch: pytest.MonkeyPatch):
    loader = importlib.machinery.SourceFileLoader("bench_proxy", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench_proxy", loader))
    monkeypatch.setitem(sys.modules, "bench_proxy", module)  # its dataclasses look their module up
    loader.exec_module(module)
    return module


def _flip_byte_101(source: socket.socket, sink: socket.socket) -> None:
    flipped = False
    while data := source.recv(65536):
        if not flipped and len(data) > 100:
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            flipped = True
        try:
            sink.sendall(data)
        except OSError:
            return


@pytest.mark.parametrize(("mode", "role", "message"), [
    ("down", "source", "differ from what the target sent"),
    ("up", "sink", "differ from what the client sent"),
])
def test_generator_stops_on_a_relay_that_changes_a_byte(cache: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                         mode: str, role: str, message: str) -> None:
    """The byte-exact claim can fail: a raw relay that flips one byte, either way, stops the generator."""
    monkeypatch.setenv("XDG_CACHE_HOME", cache["XDG_CACHE_HOME"])
    generator = _load_script(monkeypatch).build_generator()
    with subprocess.Popen([str(generator), "target"], stdout=subprocess.PIPE, text=True) as target:
        try:
            assert target.stdout
            ports = dict(item.split("=") for item in target.stdout.readline().split()[1:])
            listener = socket.create_server(("127.0.0.1", 0))

            def corrupting_relay() -> None:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", int(ports[role])))
                if mode == "down":
                    upstream.sendall(client.recv(8))  # the count the target is to send
                    _flip_byte_101(upstream, client)
                else:
                    threading.Thread(target=_flip_byte_101, args=(upstream, client), daemon=True).start()
                    _flip_byte_101(client, upstream)
                client.close()
                upstream.close()

            relay = threading.Thread(target=corrupting_relay, daemon=True)
            relay.start()
            done = subprocess.run([str(generator), mode, "--port", str(listener.getsockname()[1]),
                                   "--bytes", str(4 << 20)], capture_output=True, text=True, timeout=60)
            relay.join(10)
            listener.close()
        finally:
            target.terminate()
    assert done.returncode == 2
    assert message in done.stderr
