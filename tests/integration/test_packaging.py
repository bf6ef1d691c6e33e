"""The product as an admin installs it: the built wheel in a fresh virtualenv outside the source tree.

One wheel install per module; the engine then runs with no package index (`PIP_NO_INDEX=1`, no pip
configuration) and a wheel directory the admin prepared beforehand with `pip download`.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.conftest import ENGINE_ENV
from tests.integration.deploy.conftest import (
    testhosts_factory,  # noqa: F401 (the test hosts' fixture)
    wait_in_namespace,
)
from tests.integration.deploy.test_deploy import handshake
from tests.integration.proxy.conftest import VNC_PASSWORD, Echo, free_port, process_tree, wait_port, write_override
from tests.integration.proxy.rfb import console_login
from tests.integration.proxy.test_workers import echoes, pid_alive

pytestmark = pytest.mark.integration
SOURCE = Path(__file__).resolve().parents[2]
WHEELHOUSE_KEY = "OVESETUP_CONFIG/websocketProxyWheelhouse"
PROXY_REQUIREMENTS = ["cryptography>=41", "jinja2>=3.1", "websockets>=13", "uvloop>=0.19"]


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    wheels: Path  # the admin's wheel directory for the proxy hosts

    def run(self, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        """A command of the installed product, on an engine with no package index."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, PATH=f"{self.venv / 'bin'}:{env['PATH']}")
        return subprocess.run([str(self.venv / "bin" / name), *args], capture_output=True, text=True, cwd=cwd,
                              env=env, stdin=subprocess.DEVNULL, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    top = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(top / "dist"), str(SOURCE)],
                   check=True, capture_output=True, cwd=top)
    wheel = next((top / "dist").glob("*.whl"))
    venv = top / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin/pip", "install", "-q", str(wheel)], check=True, capture_output=True, cwd=top)
    subprocess.run([venv / "bin/pip", "download", "-q", "--only-binary=:all:", "-d", str(top / "wheels"),
                    *PROXY_REQUIREMENTS, "pip"], check=True, capture_output=True, cwd=top)
    return Installed(venv, wheel, top / "wheels")


def files_below(root: Path) -> list[str]:
    """Every file below root but the run's own records: its log (with the runner's artifacts beside it) and the
    answer file every run leaves, failed or not, for the next one."""
    records = (root / "var/log/ovirt-engine/setup", root / "var/lib/ovirt-engine/setup/answers")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not any(r in p.parents for r in records))


def test_the_wheel_runs_outside_the_source_tree_with_the_roles_templates_as_files(installed, tmp_path):
    root = tmp_path / "root"
    result = installed.run("engine-setup", "--root", str(root), "--accept-defaults",
                           f"--otopi-environment={ENGINE_ENV}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf").is_file()
    shipped = installed.run("python", "-c", "from ovcommon.resources import resource_dir as r; "
                            "print(r('plugins'), r('templates'), r('ansible'))", cwd=tmp_path).stdout
    assert str(installed.venv) in shipped and str(SOURCE) not in shipped
    role_templates = SOURCE / "ansible/roles/ovirt_websocket_proxy/templates"
    with zipfile.ZipFile(installed.wheel) as wheel:
        for link in role_templates.iterdir():
            assert link.is_symlink()  # one copy in the source: the role's templates are local setup's
            name = f"ovcommon/share/ansible/roles/ovirt_websocket_proxy/templates/{link.name}"
            assert wheel.read(name) == link.resolve().read_bytes(), name


def test_no_wheel_directory_and_no_index_fails_in_validation_naming_the_key(installed, tmp_path):
    root = tmp_path / "root"
    env = ("OVESETUP_CONFIG/websocketProxyConfig=bool:False OVESETUP_CONFIG/fqdn=str:engine.wsp.test "
           "OVESETUP_CONFIG/websocketProxyDeploy=str:Remote 'OVESETUP_CONFIG/websocketProxyRemoteHost=str:"
           "proxy.wsp.test 127.0.0.1' OVESETUP_CONFIG/websocketProxySshPort=int:9 "
           "OVESETUP_CONFIG/websocketProxySshAcceptNewHostKeys=bool:True")
    result = installed.run("engine-setup", "--root", str(root), "--accept-defaults", f"--otopi-environment={env}",
                           cwd=tmp_path)
    assert result.returncode != 0
    assert "Failed to execute stage 'Setup validation'" in result.stdout, result.stdout
    assert f"set {WHEELHOUSE_KEY} to a directory of wheels" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert files_below(root) == []


def test_a_database_without_postgresql_support_fails_in_validation(installed, tmp_path):
    root = tmp_path / "root"
    env = (f"{ENGINE_ENV} OVESETUP_DB/host=str:127.0.0.1 OVESETUP_DB/port=int:5432 OVESETUP_DB/user=str:engine "
           "OVESETUP_DB/password=str:secret OVESETUP_DB/database=str:engine")
    result = installed.run("engine-setup", "--root", str(root), "--accept-defaults", f"--otopi-environment={env}",
                           cwd=tmp_path)
    assert result.returncode != 0
    assert "Failed to execute stage 'Setup validation'" in result.stdout, result.stdout
    assert "pip install 'ovirt-engine-wsp[pg]'" in result.stdout
    assert files_below(root) == []


def test_remote_mode_from_the_wheel_with_no_index_then_a_rerun_and_cleanup(installed, testhosts_factory, tmp_path):  # noqa: F811
    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    root = tmp_path / "root"
    env = " ".join([
        "OVESETUP_CONFIG/websocketProxyConfig=bool:False", "OVESETUP_CONFIG/fqdn=str:engine.wsp.test",
        "OVESETUP_CONFIG/websocketProxyDeploy=str:Remote",
        f"'OVESETUP_CONFIG/websocketProxyRemoteHost=str:{host.fqdn} {host.address}'",
        f"OVESETUP_CONFIG/websocketProxySshKey=str:{hosts.client_key}",
        f"OVESETUP_CONFIG/websocketProxySshKnownHosts=str:{hosts.known_hosts}",
        f"{WHEELHOUSE_KEY}=str:{installed.wheels}"])
    first = installed.run("engine-setup", "--root", str(root), "--accept-defaults", f"--otopi-environment={env}",
                          cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{host.fqdn}: Install the proxy into its virtualenv: changed" in first.stdout
    assert ("DNS", host.fqdn) in handshake(root, host)["subjectAltName"]

    password = tmp_path / "vncpasswd"
    password.write_bytes(subprocess.run(["vncpasswd", "-f"], input=f"{VNC_PASSWORD}\n".encode(),
                                        capture_output=True, check=True).stdout)
    xvnc = host.netns("Xvnc", ":78", "-rfbport", "5978", "-localhost", "-geometry", "320x240", "-depth", "24",
                      "-SecurityTypes", "VncAuth", "-PasswordFile", str(password),
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_in_namespace(host, "127.0.0.1", 5978)
        made = installed.run("engine-console-ticket", "--root", str(root), "--host", "127.0.0.1", "--port", "5978",
                             cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert console_login(f"wss://{host.address}:6100/{made.stdout.strip()}", VNC_PASSWORD, host.fqdn,
                             cafile=str(root / "etc/pki/ovirt-engine/ca.pem")) == (320, 240)
    finally:
        xvnc.send_signal(signal.SIGTERM)
        xvnc.wait(10)

    again = installed.run("engine-setup", "--root", str(root), "--accept-defaults", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": changed" not in again.stdout and ": ok" in again.stdout

    cleanup = installed.run("engine-cleanup", "--root", str(root), "--accept-defaults",
                            "--otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True", cwd=tmp_path)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert f"WebSocket Proxy removed from {host.fqdn}" in cleanup.stdout
    assert host.ssh(hosts, "ls /opt/ovirt-websocket-proxy").stdout.split() == []


def newer_wheel(top: Path) -> Path:
    """This source with its version bumped, built: what an upgrade installs."""
    tree = top / "next"
    shutil.copytree(SOURCE, tree, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                                ".hypothesis", ".pytest_cache", ".ruff_cache"))
    setup_py = tree / "setup.py"
    setup_py.write_text(re.sub(r'version="[^"]+"', 'version="99.0.0"', setup_py.read_text()))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(top / "next-dist"), str(tree)],
                   check=True, capture_output=True, cwd=top)
    return next((top / "next-dist").glob("*.whl"))


def test_the_installed_proxy_hands_over_to_a_newly_installed_version(installed, tmp_path):
    """pip installs a new version under a running proxy; SIGUSR2 starts it: the new version answers new
    connections, the console opened before keeps relaying until it ends, then the old processes exit."""
    root = tmp_path / "root"
    assert installed.run("engine-setup", "--root", str(root), "--accept-defaults",
                         f"--otopi-environment={ENGINE_ENV}", cwd=tmp_path).returncode == 0
    port = free_port()
    write_override(root, f"PROXY_PORT={port}\nWORKERS=2\n", "30-test.conf")
    pidfile, log = tmp_path / "proxy.pid", tmp_path / "proxy.log"
    proc = subprocess.Popen([str(installed.venv / "bin/ovirt-websocket-proxy"), "--root", str(root), "--pidfile",
                             str(pidfile)], stderr=log.open("wb"), cwd=tmp_path)
    echo = Echo()
    ctx = ssl.create_default_context(cafile=str(root / "etc/pki/ovirt-engine/ca.pem"))

    def ticket() -> str:
        made = installed.run("engine-console-ticket", "--root", str(root), "--host", "127.0.0.1", "--port",
                             str(echo.port), cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        return f"wss://127.0.0.1:{port}/{made.stdout.strip()}"

    def version_and_pid() -> tuple[str, int]:
        request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics")
        ctx_no_name = ssl.create_default_context(cafile=str(root / "etc/pki/ovirt-engine/ca.pem"))
        ctx_no_name.check_hostname = False
        with urllib.request.urlopen(request, context=ctx_no_name, timeout=10) as answer:
            text = answer.read().decode()
        version, pid = re.search(r'wsproxy_build_info\{version="([^"]+)",pid="(\d+)"\}', text).groups()
        return version, int(pid)

    async def run() -> None:
        before = await connect(ticket(), ssl=ctx, server_hostname="engine.example.test", subprotocols=["binary"])
        await echoes(before, b"opened by the old version")
        assert version_and_pid() == ("0.1.0", proc.pid)
        wheel = newer_wheel(tmp_path)
        subprocess.run([installed.venv / "bin/pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                       capture_output=True, cwd=tmp_path)
        proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while int(pidfile.read_text()) == proc.pid:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            await asyncio.sleep(0.1)
        new = int(pidfile.read_text())
        assert version_and_pid() == ("99.0.0", new)
        async with connect(ticket(), ssl=ctx, server_hostname="engine.example.test", subprotocols=["binary"]) as ws:
            await echoes(ws, b"opened by the new version")
        await echoes(before, b"still relayed by the old one")
        assert proc.poll() is None
        await before.close()
        await asyncio.to_thread(proc.wait, 15)
        assert "hand-over: old process" in log.read_text()
        os.kill(new, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(new):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

    try:
        wait_port(port, proc)
        asyncio.run(run())
    finally:
        for main in {proc.pid, *([int(pidfile.read_text())] if pidfile.exists() else [])}:
            for pid in process_tree(main):
                if pid_alive(pid):
                    os.kill(pid, signal.SIGTERM)
        proc.wait(10)
        echo.sock.close()
        subprocess.run([installed.venv / "bin/pip", "install", "-q", "--no-deps", "--force-reinstall",
                        str(installed.wheel)], check=True, capture_output=True, cwd=tmp_path)  # for later tests
