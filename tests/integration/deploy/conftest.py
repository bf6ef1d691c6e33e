"""Test hosts for the deployment tests: `scripts/testhosts` brings them up, the fixtures tear them down.

Needs root (network namespaces); the tests are skipped otherwise. CI runs them as root.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[3] / "scripts" / "testhosts"
HOSTS_LOCK = "/run/lock/wsp-testhosts.lock"


@dataclass(frozen=True)
class SshHost:
    name: str
    fqdn: str
    address: str
    host_key_pub: str

    def ssh(self, hosts: SshHosts, command: str) -> subprocess.CompletedProcess:
        """Run a shell command on this host as root."""
        return subprocess.run(
            ["ssh", "-i", hosts.client_key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={hosts.known_hosts}", f"root@{self.address}", command],
            capture_output=True, text=True, timeout=60)

    def netns(self, *argv: str, **kwargs) -> subprocess.Popen:
        """Start a process inside this host's network namespace (the controller's filesystem view)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)


@dataclass(frozen=True)
class SshHosts:
    directory: Path
    client_key: str
    known_hosts: str
    hosts: tuple[SshHost, ...]


def bring_up(count: int, directory: Path) -> SshHosts:
    subprocess.run([str(TOOL), "up", str(count), "--dir", str(directory)], check=True, capture_output=True)
    state = json.loads((directory / "state.json").read_text())
    hosts = tuple(SshHost(h["name"], h["fqdn"], h["address"], h["host_key_pub"]) for h in state["hosts"])
    return SshHosts(directory, state["client_key"], state["known_hosts"], hosts)


def tear_down(directory: Path) -> None:
    subprocess.run([str(TOOL), "down", "--dir", str(directory)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def testhosts_factory() -> Iterator:
    """`factory(n)` brings up n fresh hosts (replacing any this module brought up before)."""
    if os.geteuid() != 0:
        pytest.skip("test hosts need root (network namespaces)")
    # The hosts' names and bridge are machine-wide: one test run at a time may hold them.
    lock = open(HOSTS_LOCK, "w")  # noqa: SIM115 (held for the module's lifetime)
    fcntl.flock(lock, fcntl.LOCK_EX)
    directory = Path(tempfile.mkdtemp(prefix="wsp-th-", dir="/tmp"))

    def factory(count: int) -> SshHosts:
        return bring_up(count, directory)

    try:
        yield factory
    finally:
        tear_down(directory)
        shutil.rmtree(directory, ignore_errors=True)
        lock.close()


@pytest.fixture(scope="session")
def wheelhouse_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product's wheelhouse, built once per session; each test copies it below its own --root."""
    from ovcommon.paths import Root
    from ovsetup import deploy

    return deploy.wheelhouse_for(Root(tmp_path_factory.mktemp("wheelhouse-root"))).archive


@pytest.fixture
def engine_root(tmp_path: Path, wheelhouse_tar: Path) -> Path:
    """An empty --root for engine-setup whose wheelhouse cache already holds the session's wheelhouse."""
    from ovcommon.paths import Root
    from ovsetup import deploy

    root = tmp_path / "root"
    cache = Root(root).path(deploy.WHEELHOUSE_DIR)
    cache.mkdir(parents=True)
    shutil.copy(wheelhouse_tar, cache / wheelhouse_tar.name)
    return root


def wait_in_namespace(host: SshHost, address: str, port: int) -> None:
    probe = f"import socket; socket.create_connection(('{address}', {port}), 0.5)"
    for _ in range(50):
        if subprocess.run(["ip", "netns", "exec", host.name, "python3", "-c", probe],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {address}:{port} in {host.name}")


def console_size(root: Path, host: SshHost, work: Path, display: int, ticket: Callable[[str, int], str]) -> tuple:
    """Log in through the host's proxy to an Xvnc in its namespace with a ticket from `ticket(address, port)`;
    the screen size the VNC server announced."""
    import signal

    from tests.integration.proxy.conftest import VNC_PASSWORD
    from tests.integration.proxy.rfb import console_login

    password = work / "vncpasswd"
    password.write_bytes(subprocess.run(["vncpasswd", "-f"], input=f"{VNC_PASSWORD}\n".encode(),
                                        capture_output=True, check=True).stdout)
    port = 5900 + display
    xvnc = host.netns("Xvnc", f":{display}", "-rfbport", str(port), "-localhost", "-geometry", "320x240", "-depth",
                      "24", "-SecurityTypes", "VncAuth", "-PasswordFile", str(password),
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_in_namespace(host, "127.0.0.1", port)
        return console_login(f"wss://{host.address}:6100/{ticket('127.0.0.1', port)}", VNC_PASSWORD, host.fqdn,
                             cafile=str(root / "etc/pki/ovirt-engine/ca.pem"))
    finally:
        xvnc.send_signal(signal.SIGTERM)
        xvnc.wait(10)
