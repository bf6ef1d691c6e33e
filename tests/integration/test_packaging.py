"""The product as an admin installs it: the built wheel in a fresh virtualenv outside the source tree.

One wheel install per module; the engine then runs with no package index (`PIP_NO_INDEX=1`, no pip
configuration) and a wheel directory the admin prepared beforehand with `pip download`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ENGINE_ENV
from tests.integration.deploy.conftest import (
    testhosts_factory,  # noqa: F401 (the test hosts' fixture)
    wait_in_namespace,
)
from tests.integration.deploy.test_deploy import handshake
from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import console_login

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
