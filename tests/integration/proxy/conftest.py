"""Real components for the proxy's integration tests: Xvnc, the daemon, engine-console-ticket.

Everything listens on loopback on free ports and is stopped at teardown.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.proxy.pkitools import EnginePKI, Pair, issue, make_ca, write_engine_pki, write_override

BIN = Path(sys.executable).parent
VNC_PASSWORD = "secret12"
ROOT_COLOUR = "#2e8b57"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: runs real components (Xvnc, Chromium, daemons)")


def command(name: str) -> list[str]:
    path = BIN / name
    if path.exists():
        return [str(path)]
    found = shutil.which(name)
    if found:
        return [found]
    module = {"ovirt-websocket-proxy": "wsproxy.daemon", "engine-console-ticket": "ovsetup.console_ticket"}[name]
    return [sys.executable, "-m", module]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (the proxy's supervisor, then its workers)."""
    out, todo = [], [pid]
    while todo:
        each = todo.pop(0)
        out.append(each)
        try:
            todo += [int(child) for child in Path(f"/proc/{each}/task/{each}/children").read_text().split()]
        except FileNotFoundError:
            pass
    return out


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Vnc:
    display: int
    port: int
    proc: subprocess.Popen


def _free_display() -> int:
    for number in range(40, 99):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display")


def start_xvnc(workdir: Path, *security: str) -> Vnc:
    if shutil.which("Xvnc") is None:
        pytest.skip("Xvnc (tigervnc-standalone-server) is not installed")
    password_file = workdir / "vncpasswd"
    password_file.write_bytes(subprocess.run(["vncpasswd", "-f"], input=f"{VNC_PASSWORD}\n".encode(),
                                             capture_output=True, check=True).stdout)
    password_file.chmod(0o600)
    for _ in range(5):
        display, port = _free_display(), free_port()
        proc = subprocess.Popen(["Xvnc", f":{display}", "-rfbport", str(port), "-localhost", "-geometry", "320x240",
                                 "-depth", "24", "-PasswordFile", str(password_file), *security],
                                stdout=subprocess.DEVNULL, stderr=(workdir / f"xvnc-{display}.log").open("wb"))
        try:
            wait_port(port, proc)
        except (RuntimeError, TimeoutError):
            stop(proc)
            continue
        env = {**os.environ, "DISPLAY": f":{display}"}
        subprocess.run(["xsetroot", "-solid", ROOT_COLOUR], env=env, check=True, timeout=10)
        return Vnc(display, port, proc)
    raise RuntimeError("Xvnc did not start")


@pytest.fixture(scope="session")
def xvnc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vnc]:
    """TigerVNC with VNC password authentication."""
    vnc = start_xvnc(tmp_path_factory.mktemp("xvnc"), "-SecurityTypes", "VncAuth")
    yield vnc
    stop(vnc.proc)


@pytest.fixture(scope="session")
def engine_ca() -> Pair:
    """The engine CA of every test's engine_root: it also issues the VeNCrypt servers' certificates."""
    return make_ca("engine-ca")


def _xvnc_tls(tmp_path_factory: pytest.TempPathFactory, pair: Pair) -> Iterator[Vnc]:
    """TigerVNC that wants VeNCrypt X509VNC, as libvirt's vnc_tls does, with the given certificate."""
    workdir = tmp_path_factory.mktemp("xvnc-tls")
    (workdir / "vnc.key").write_bytes(pair.key_pem)
    (workdir / "vnc.crt").write_bytes(pair.cert_pem)
    vnc = start_xvnc(workdir, "-SecurityTypes", "X509Vnc", "-X509Key", str(workdir / "vnc.key"),
                     "-X509Cert", str(workdir / "vnc.crt"))
    yield vnc
    stop(vnc.proc)


@pytest.fixture(scope="session")
def xvnc_tls(tmp_path_factory: pytest.TempPathFactory, engine_ca: Pair) -> Iterator[Vnc]:
    """X509Vnc with a certificate from the engine CA for localhost, 127.0.0.1 and ::1."""
    yield from _xvnc_tls(tmp_path_factory, issue(engine_ca, "localhost"))


@pytest.fixture(scope="session")
def xvnc_tls_other_name(tmp_path_factory: pytest.TempPathFactory, engine_ca: Pair) -> Iterator[Vnc]:
    """X509Vnc with a certificate from the engine CA for another host."""
    yield from _xvnc_tls(tmp_path_factory, issue(engine_ca, "vnc.example", ("vnc.example", "192.0.2.9")))


@pytest.fixture(scope="session")
def xvnc_tls_other_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vnc]:
    """X509Vnc with a certificate for the right names from a CA the engine does not know."""
    yield from _xvnc_tls(tmp_path_factory, issue(make_ca("hypervisor-ca"), "localhost"))


class Canary:
    """A TCP listener that counts connections: a target no refused request may reach."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.sendall(b"RFB 003.008\n")
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="session")
def foreign():
    """A key and certificate that the engine never issued."""
    return issue(make_ca("other-ca"), "impostor")


@pytest.fixture
def canary() -> Iterator[Canary]:
    target = Canary()
    yield target
    target.close()


@dataclass
class ProxyProcess:
    root: Path
    port: int
    proc: subprocess.Popen
    log_path: Path
    pki: EnginePKI
    extra: list[str] = field(default_factory=list)

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def url(self, ticket: str, scheme: str = "wss") -> str:
        return f"{scheme}://localhost:{self.port}/{ticket}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ticket(self, host: str, port: int, *args: str) -> str:
        result = subprocess.run([*command("engine-console-ticket"), "--root", str(self.root), "--host", host,
                                 "--port", str(port), *args], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@pytest.fixture
def engine_root(tmp_path: Path, engine_ca: Pair) -> EnginePKI:
    """An engine PKI and proxy config as engine-setup writes them, on a free port."""
    return write_engine_pki(tmp_path / "root", port=free_port(), ca=engine_ca)


def start_proxy(pki: EnginePKI, workdir: Path, *args: str, prefix: tuple[str, ...] = ()) -> ProxyProcess:
    """The daemon on pki's configuration; `prefix` runs it under another command (prlimit)."""
    port = int([line for line in (pki.root / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf")
                .read_text().splitlines() if line.startswith("PROXY_PORT=")][0].split("=")[1])
    for override in sorted((pki.root / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d").glob("*.conf")):
        for line in override.read_text().splitlines():
            if line.startswith("PROXY_PORT="):
                port = int(line.split("=")[1])
    log_path = workdir / f"proxy-{port}.log"
    proc = subprocess.Popen([*prefix, *command("ovirt-websocket-proxy"), "--root", str(pki.root), "--debug", *args],
                            stdout=subprocess.DEVNULL, stderr=log_path.open("wb"))
    wait_port(port, proc)
    return ProxyProcess(pki.root, port, proc, log_path, pki, list(args))


@pytest.fixture
def proxy_factory(engine_root: EnginePKI, tmp_path: Path) -> Iterator:
    started: list[ProxyProcess] = []

    def factory(config: str = "", prefix: tuple[str, ...] = ()) -> ProxyProcess:
        if config:
            write_override(engine_root.root, config)
        proxy = start_proxy(engine_root, tmp_path, prefix=prefix)
        started.append(proxy)
        return proxy

    yield factory
    for proxy in started:
        stop(proxy.proc)


@pytest.fixture
def proxy(proxy_factory) -> ProxyProcess:
    return proxy_factory()


class Echo:
    """A TCP target that sends back every byte it receives, one thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(random.choice((1, 100, 65536, 1 << 20))):
                    conn.sendall(data)
            except OSError:
                pass


@pytest.fixture
def echo() -> Iterator[Echo]:
    target = Echo()
    yield target
    target.sock.close()
