"""engine-setup deploys the proxy with Ansible to real SSH test hosts (network namespaces, own sshd).

Remote mode on one host, the console through it, a no-change re-run; host-key checks; Hosts mode on three
hosts with one unreachable, then finished by a re-run; a ticket for one host refused by another's proxy.
"""
from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import run
from tests.integration.deploy.conftest import SshHost, SshHosts, wait_in_namespace
from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import console_login

pytestmark = pytest.mark.integration
PORT = 6100
PIDFILE = "/opt/ovirt-websocket-proxy/run/ovirt-websocket-proxy.pid"


def engine_setup(root: Path, hosts: SshHosts, *statements: str, known_hosts: str | None = None):
    env = " ".join([
        "OVESETUP_CONFIG/websocketProxyConfig=bool:False", "OVESETUP_CONFIG/fqdn=str:engine.wsp.test",
        f"OVESETUP_CONFIG/websocketProxySshKey=str:{hosts.client_key}",
        f"OVESETUP_CONFIG/websocketProxySshKnownHosts=str:{known_hosts or hosts.known_hosts}", *statements])
    return run("engine-setup", "--root", str(root), "--accept-defaults", f"--otopi-environment={env}")


def option(root: Path) -> str:
    return run("engine-config", "--root", str(root), "-g", "WebSocketProxy").stdout.split()[1]


def handshake(root: Path, host: SshHost) -> dict:
    context = ssl.create_default_context(cafile=str(root / "etc/pki/ovirt-engine/ca.pem"))
    import socket

    with socket.create_connection((host.address, PORT), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host.fqdn) as tls:
        return tls.getpeercert()


def proxy_pid(hosts: SshHosts, host: SshHost) -> str:
    return host.ssh(hosts, f"cat {PIDFILE}").stdout.strip()


def ticket(root: Path, address: str, port: int) -> str:
    result = run("engine-console-ticket", "--root", str(root), "--host", address, "--port", str(port))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_remote_mode_serves_the_console_and_a_rerun_changes_nothing(testhosts_factory, engine_root, tmp_path):
    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    remote = f"OVESETUP_CONFIG/websocketProxyDeploy=str:Remote 'OVESETUP_CONFIG/websocketProxyRemoteHost=str:" \
             f"{host.fqdn} {host.address}'"
    first = engine_setup(engine_root, hosts, remote)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{host.fqdn}: Install the proxy into its virtualenv: changed" in first.stdout
    assert option(engine_root) == f"{host.fqdn}:{PORT}"
    peer = handshake(engine_root, host)
    assert ("DNS", host.fqdn) in peer["subjectAltName"]
    pki = engine_root / "etc/pki/ovirt-engine"
    assert (pki / f"requests/websocket-proxy-{host.fqdn}.req").is_file()
    assert (pki / f"certs/websocket-proxy-{host.fqdn}.cer").is_file()
    installed = host.ssh(hosts, "/opt/ovirt-websocket-proxy/venv/bin/python -c 'import importlib.metadata as m; "
                                "print(*sorted(d.metadata[\"Name\"].lower() for d in m.distributions()))'")
    names = set(installed.stdout.split())
    assert {"ovirt-engine-wsp", "websockets", "cryptography", "uvloop", "jinja2"} <= names, installed.stderr
    assert not {n for n in names if n.startswith(("ansible", "psycopg"))}, names

    key = host.ssh(hosts, "stat -c %a /etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass; "
                          "sed -n 2p /etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass")
    mode, key_line = key.stdout.split()
    assert mode == "600" and len(key_line) == 64
    for path in [*engine_root.rglob("*"), *Path("/tmp").glob("wsp-runner-*")]:
        if path.is_file():
            assert key_line.encode() not in path.read_bytes(), f"the host's private key is in {path}"

    password = tmp_path / "vncpasswd"
    password.write_bytes(subprocess.run(["vncpasswd", "-f"], input=f"{VNC_PASSWORD}\n".encode(),
                                        capture_output=True, check=True).stdout)
    xvnc = host.netns("Xvnc", ":77", "-rfbport", "5977", "-localhost", "-geometry", "320x240", "-depth", "24",
                      "-SecurityTypes", "VncAuth", "-PasswordFile", str(password),
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_in_namespace(host, "127.0.0.1", 5977)
        url = f"wss://{host.address}:{PORT}/{ticket(engine_root, '127.0.0.1', 5977)}"
        assert console_login(url, VNC_PASSWORD, host.fqdn, cafile=str(pki / "ca.pem")) == (320, 240)
    finally:
        xvnc.send_signal(signal.SIGTERM)
        xvnc.wait(10)

    pid = proxy_pid(hosts, host)
    recorded = [engine_root / "etc/ovirt-engine-setup.conf.d/20-setup-websocket-proxy-deploy.conf",
                engine_root / "var/lib/ovirt-engine/setup/websocket-proxy-deploy.json"]
    stamps = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in recorded]
    again = engine_setup(engine_root, hosts)  # the recorded answers bring the deployment back
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": changed" not in again.stdout and ": ok" in again.stdout
    assert proxy_pid(hosts, host) == pid
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in recorded] == stamps, "a no-change re-run wrote them"

    cleanup = run("engine-cleanup", "--root", str(engine_root), "--accept-defaults",
                  "--otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True")
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert f"WebSocket Proxy removed from {host.fqdn}" in cleanup.stdout
    assert option(engine_root) == "Off"
    assert host.ssh(hosts, "ls /opt/ovirt-websocket-proxy").stdout.split() == []
    assert f":{PORT} " not in subprocess.run(["ip", "netns", "exec", host.name, "ss", "-ltn"], capture_output=True,
                                             text=True).stdout
    for gone in (pki / f"requests/websocket-proxy-{host.fqdn}.req", pki / f"certs/websocket-proxy-{host.fqdn}.cer",
                 engine_root / "var/lib/ovirt-engine/setup/websocket-proxy-deploy.json",
                 engine_root / "etc/ovirt-engine-setup.conf.d/20-setup-websocket-proxy-deploy.conf"):
        assert not gone.exists(), gone
    second = run("engine-cleanup", "--root", str(engine_root), "--accept-defaults",
                 "--otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True")
    assert second.returncode == 0 and "WebSocket Proxy removed from" not in second.stdout


def test_host_keys_are_checked(testhosts_factory, engine_root, tmp_path):
    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    remote = f"OVESETUP_CONFIG/websocketProxyDeploy=str:remote 'OVESETUP_CONFIG/websocketProxyRemoteHost=str:" \
             f"{host.fqdn} {host.address}'"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{host.address} {' '.join((tmp_path / 'other.pub').read_text().split()[:2])}\n")
    refused = engine_setup(engine_root, hosts, remote, known_hosts=str(wrong))
    assert refused.returncode != 0
    assert f"{host.fqdn}: " in refused.stdout and "UNREACHABLE" in refused.stdout
    assert option(engine_root) == "Off"
    assert "The files this run wrote are kept" in refused.stdout
    assert "kept /etc/ovirt-engine-setup.conf.d/20-setup-websocket-proxy-deploy.conf and " \
           "/var/lib/ovirt-engine/setup/websocket-proxy-deploy.json for the re-run (engine-setup)" in refused.stdout
    refused = engine_setup(engine_root, hosts, remote, "OVESETUP_CONFIG/websocketProxySshAcceptNewHostKeys=bool:True",
                           known_hosts=str(wrong))
    assert refused.returncode != 0, "accepting new keys must not accept a changed one"
    unknown = tmp_path / "known_hosts"
    unknown.write_text("")
    refused = engine_setup(engine_root, hosts, remote, "OVESETUP_CONFIG/websocketProxySshAcceptNewHostKeys=bool:False",
                           known_hosts=str(unknown))
    assert refused.returncode != 0 and "Host key verification failed" in refused.stdout + _log(engine_root)
    accepted = engine_setup(engine_root, hosts, remote, "OVESETUP_CONFIG/websocketProxySshAcceptNewHostKeys=bool:True",
                            known_hosts=str(unknown))
    assert accepted.returncode == 0, accepted.stdout
    assert host.host_key_pub in unknown.read_text() and option(engine_root) == f"{host.fqdn}:{PORT}"


def _log(root: Path) -> str:
    return "".join(p.read_text() for p in (root / "var/log/ovirt-engine/setup").glob("*.log"))


def test_hosts_mode_with_an_unreachable_host_then_a_rerun_finishes(testhosts_factory, engine_root):
    hosts = testhosts_factory(3)
    down = hosts.hosts[2]
    subprocess.run(["ip", "netns", "exec", down.name, "ip", "link", "set", "eth0", "down"], check=True)
    lines = "\n".join(f"{h.fqdn} {h.address}" for h in hosts.hosts)
    statements = ("OVESETUP_CONFIG/websocketProxyDeploy=str:Hosts",
                  f"'OVESETUP_CONFIG/websocketProxyHosts=multi-str:{lines}'",
                  "OVESETUP_CONFIG/websocketProxyForks=int:3")
    failed = engine_setup(engine_root, hosts, *statements)
    assert failed.returncode != 0
    assert f"[ ERROR ] {down.fqdn}: " in failed.stdout
    assert "WebSocketProxy keeps its value Off" in failed.stdout
    assert option(engine_root) == "Off"
    for host in hosts.hosts[:2]:
        assert ("DNS", host.fqdn) in handshake(engine_root, host)["subjectAltName"]

    subprocess.run(["ip", "netns", "exec", down.name, "ip", "link", "set", "eth0", "up"], check=True)
    done = engine_setup(engine_root, hosts)
    assert done.returncode == 0, done.stdout + done.stderr
    assert option(engine_root) == f"Host:{PORT}"
    assert ("DNS", down.fqdn) in handshake(engine_root, down)["subjectAltName"]
    serials = {handshake(engine_root, h)["serialNumber"] for h in hosts.hosts}
    assert len(serials) == 3

    first, second = hosts.hosts[:2]
    listener = first.netns("python3", "-c", _BANNER.format(address=first.address), stdout=subprocess.DEVNULL)
    try:
        wait_in_namespace(first, first.address, 5901)

        async def banner(via: SshHost) -> bytes:
            context = ssl.create_default_context(cafile=str(engine_root / "etc/pki/ovirt-engine/ca.pem"))
            url = f"wss://{via.address}:{PORT}/{ticket(engine_root, first.address, 5901)}"
            async with connect(url, ssl=context, server_hostname=via.fqdn, subprotocols=["binary"]) as ws:
                return await ws.recv()

        assert asyncio.run(banner(first)) == b"RFB 003.008\n"
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(banner(second))
        assert refused.value.response.status_code == 403
    finally:
        os.kill(listener.pid, signal.SIGTERM)
        listener.wait(10)


_BANNER = """
import socket
server = socket.create_server(("{address}", 5901))
while True:
    conn, _ = server.accept()
    try:
        conn.sendall(b"RFB 003.008\\n")
        conn.recv(1)
    except OSError:
        pass
    conn.close()
"""


def test_inventory_file_then_remove_and_a_foreign_python_gets_a_clear_error(testhosts_factory, engine_root, monkeypatch,
                                                                         tmp_path):
    from ovcommon.paths import Root
    from ovsetup import deploy
    from ovsetup.deploy import runner

    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    root = Root(engine_root)
    run("engine-setup", "--root", str(engine_root), "--accept-defaults", "--otopi-environment="
        "OVESETUP_CONFIG/websocketProxyConfig=bool:True OVESETUP_CONFIG/fqdn=str:engine.wsp.test")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[hypervisors]\n{host.fqdn} ansible_host={host.address}\n")
    deployment = deploy.Deployment("hosts", [], str(inventory),
                                   deploy.Ssh(key=hosts.client_key, known_hosts=hosts.known_hosts))
    real = deploy.wheelhouse_for(root)
    monkeypatch.setattr(runner, "wheelhouse_for", lambda *args: deploy.Wheelhouse(real.archive, "other", "3.99"))
    result = deploy.deploy(deployment, root=root, artifacts=tmp_path / "foreign")
    [failed] = result.failed
    assert failed.task == "Stop unless every target has wheels for its Python"
    assert "the wheelhouse is built for 3.99" in failed.reason
    assert host.ssh(hosts, "ls /opt/ovirt-websocket-proxy").stdout.split() == [], "nothing is installed"
    monkeypatch.undo()

    assert not deploy.deploy(deployment, root=root, artifacts=tmp_path / "deploy").failed
    assert host.ssh(hosts, f"test -s {PIDFILE}").returncode == 0
    allowed = host.ssh(hosts, "cat /etc/ovirt-engine/ovirt-websocket-proxy.conf.d/20-setup-allowed-targets.conf")
    assert f"ALLOWED_TARGETS={host.address}\n" in allowed.stdout
    assert not deploy.remove(deployment, root=root, artifacts=tmp_path / "remove").failed
    gone = host.ssh(hosts, "ls /opt/ovirt-websocket-proxy /etc/ovirt-engine/ovirt-websocket-proxy.conf.d "
                           "/etc/pki/ovirt-engine/keys")
    assert gone.stdout.split() == ["/etc/ovirt-engine/ovirt-websocket-proxy.conf.d:", "/etc/pki/ovirt-engine/keys:",
                                   "/opt/ovirt-websocket-proxy:"]
    assert "6100" not in subprocess.run(["ip", "netns", "exec", host.name, "ss", "-ltn"], capture_output=True,
                                        text=True).stdout


def test_a_target_python_without_wheels_stops_validation_before_any_change(testhosts_factory, engine_root, tmp_path):
    import sys

    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    python = tmp_path / "python3.13"  # what a Debian 13 host's python3 answers the probe
    python.write_text("#!/bin/sh\nexec /usr/bin/python3 -c \"import json, platform; print(json.dumps("
                      "{'version': '3.13', 'machine': platform.machine(), 'libc': platform.libc_ver()}))\"\n")
    python.chmod(0o755)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[hypervisors]\n{host.fqdn} ansible_host={host.address} "
                         f"ovirt_websocket_proxy_python={python}\n")
    wheels = tmp_path / "wheels"  # the admin's wheel directory, with wheels for the engine's Python only
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(wheels),
                    "cryptography>=41", "jinja2>=3.1", "websockets>=13", "uvloop>=0.19", "pip"], check=True)
    before = sorted(p for p in engine_root.rglob("*") if p.is_file())
    refused = engine_setup(engine_root, hosts, "OVESETUP_CONFIG/websocketProxyDeploy=str:Hosts",
                           f"OVESETUP_CONFIG/websocketProxyInventory=str:{inventory}",
                           f"OVESETUP_CONFIG/websocketProxyWheelhouse=str:{wheels}")
    assert refused.returncode != 0
    assert "Failed to execute stage 'Setup validation'" in refused.stdout, refused.stdout
    assert f"{host.fqdn}: no wheels for Python 3.13 (x86_64) in the wheel directory {wheels}" in refused.stdout
    assert "CONFIGURATION PREVIEW" not in refused.stdout
    after = [p for p in engine_root.rglob("*") if p.is_file() and "ovirt-engine/setup/answers" not in str(p)
             and "log/ovirt-engine/setup" not in str(p)]
    assert sorted(after) == before
    assert host.ssh(hosts, "ls /opt/ovirt-websocket-proxy").stdout.split() == []
