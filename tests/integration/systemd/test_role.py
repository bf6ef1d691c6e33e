"""The role's systemd branch on machines that boot systemd: the service user, the hardened unit reaching
`active` (Type=notify) only once the proxy listens, firewalld opened and closed, restarts only on change,
a console through it to the machine's own Xvnc, and removal of everything the role made."""
from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
from websockets.asyncio.client import connect

from tests.conftest import run
from tests.integration.deploy.test_deploy import engine_setup, handshake, option, ticket
from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import RfbClient
from tests.integration.systemd.conftest import Machine

pytestmark = pytest.mark.integration
PORT = 6100
UNIT = "ovirt-websocket-proxy.service"
SERVICE = "ovirt-websocket-proxy"
REMOVE = "--otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True"


def remote(machine: Machine) -> str:
    return (f"OVESETUP_CONFIG/websocketProxyDeploy=str:Remote "
            f"'OVESETUP_CONFIG/websocketProxyRemoteHost=str:{machine.fqdn} {machine.address}'")


def reachable(address: str, port: int) -> bool:
    """Whether a TCP connection from the box (outside the machine) gets through."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def firewall_opened(machine: Machine) -> dict[str, bool]:
    """Whether the default zone has the proxy's firewalld service, permanently and at runtime."""
    out = {}
    for scope in ("--permanent", ""):
        out[scope or "runtime"] = machine.ssh(f"firewall-cmd {scope} --query-service {SERVICE}").returncode == 0
    return out


def start_xvnc(machine: Machine, listen: str = "-localhost") -> None:
    machine.check("vncpasswd -f <<< '" + VNC_PASSWORD + "' > /root/vncpasswd && "
                  f"systemd-run --unit xvnc Xvnc :77 -rfbport 5977 {listen} -geometry 320x240 -depth 24 "
                  "-SecurityTypes VncAuth -PasswordFile /root/vncpasswd && "
                  "for _ in $(seq 50); do ss -ltn | grep -q :5977 && exit 0; sleep 0.1; done; exit 1")


def console(engine_root, machine: Machine, target: str, port: int = PORT) -> tuple[int, int]:
    async def login() -> tuple[int, int]:
        context = ssl.create_default_context(cafile=str(engine_root / "etc/pki/ovirt-engine/ca.pem"))
        url = f"wss://{machine.address}:{port}/{ticket(engine_root, target, 5977)}"
        async with connect(url, ssl=context, server_hostname=machine.fqdn, subprotocols=["binary"]) as ws:
            return await RfbClient(ws).login(VNC_PASSWORD)

    return asyncio.run(login())


def test_remote_mode_service_firewall_rerun_port_change_and_cleanup(sdmachines_factory, engine_root):
    machines = sdmachines_factory(1)
    machine = machines.hosts[0]
    machine.check("systemctl start firewalld")
    # firewalld filters: a listener on the port is reachable inside the machine but not from outside
    machine.check(f"systemd-run --unit probe python3 -m http.server {PORT} && sleep 0.5 && "
                  f"timeout 2 bash -c 'echo > /dev/tcp/127.0.0.1/{PORT}'")
    assert not reachable(machine.address, PORT)
    machine.check("systemctl stop probe")

    first = engine_setup(engine_root, machines, remote(machine))
    assert first.returncode == 0, first.stdout + first.stderr
    assert option(engine_root) == f"{machine.fqdn}:{PORT}"
    assert machine.show(UNIT, "ActiveState") == "active" and machine.show(UNIT, "Type") == "notify"
    assert machine.show(UNIT, "UnitFileState") == "enabled"
    assert machine.show(UNIT, "User") == "ovirt"
    assert machine.check("getent passwd ovirt").startswith("ovirt:")
    assert machine.check("stat -c '%U %a' /etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass").split() == \
        ["ovirt", "600"]
    assert firewall_opened(machine) == {"--permanent": True, "runtime": True}
    assert ("DNS", machine.fqdn) in handshake(engine_root, machine)["subjectAltName"]
    # Type=notify: `systemctl restart` returns only once the proxy listens
    machine.check(f"systemctl restart {UNIT} && ss -ltnH 'sport = :{PORT}' | grep -q LISTEN")

    start_xvnc(machine)
    assert console(engine_root, machine, "127.0.0.1") == (320, 240)

    pid = machine.show(UNIT, "MainPID")
    again = engine_setup(engine_root, machines)
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": changed" not in again.stdout
    assert machine.show(UNIT, "MainPID") == pid, "a no-change re-run restarted the proxy"

    moved = engine_setup(engine_root, machines, "OVESETUP_CONFIG/websocketProxyPort=int:6200")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert machine.show(UNIT, "MainPID") != pid
    assert "6200/tcp" in machine.check(f"firewall-cmd --info-service {SERVICE}")
    assert "6200/tcp" in machine.check(f"firewall-cmd --permanent --info-service {SERVICE}")
    assert console(engine_root, machine, "127.0.0.1", 6200) == (320, 240)
    machine.check(f"systemd-run --unit probe python3 -m http.server {PORT}")
    assert not reachable(machine.address, PORT), "the old port stays open"
    machine.check("systemctl stop probe")

    cleanup = run("engine-cleanup", "--root", str(engine_root), "--accept-defaults", REMOVE)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert machine.show(UNIT, "LoadState") == "not-found"
    assert machine.ssh("getent passwd ovirt").returncode != 0, "the user the role made stays"
    assert firewall_opened(machine) == {"--permanent": False, "runtime": False}
    assert machine.ssh(f"test -e /etc/firewalld/services/{SERVICE}.xml").returncode != 0
    machine.check("systemd-run --unit probe python3 -m http.server 6200 && sleep 0.5")
    assert not reachable(machine.address, 6200), "the port stays open after cleanup"


def test_hosts_mode_on_three_machines_keeps_a_user_that_was_there(sdmachines_factory, engine_root):
    machines = sdmachines_factory(3)
    for machine in machines.hosts:
        machine.check("systemctl start firewalld")
    before = machines.hosts[0]
    before.check("useradd --system --no-create-home ovirt")
    lines = "\n".join(f"{m.fqdn} {m.address}" for m in machines.hosts)
    statements = ("OVESETUP_CONFIG/websocketProxyDeploy=str:Hosts",
                  f"'OVESETUP_CONFIG/websocketProxyHosts=multi-str:{lines}'",
                  "OVESETUP_CONFIG/websocketProxyForks=int:3")
    done = engine_setup(engine_root, machines, *statements)
    assert done.returncode == 0, done.stdout + done.stderr
    assert option(engine_root) == f"Host:{PORT}"
    pids = {}
    for machine in machines.hosts:
        assert machine.show(UNIT, "ActiveState") == "active"
        assert firewall_opened(machine) == {"--permanent": True, "runtime": True}
        pids[machine.name] = machine.show(UNIT, "MainPID")
    start_xvnc(machines.hosts[1], listen="")
    assert console(engine_root, machines.hosts[1], machines.hosts[1].address) == (320, 240)

    again = engine_setup(engine_root, machines)
    assert again.returncode == 0 and ": changed" not in again.stdout, again.stdout
    assert {m.name: m.show(UNIT, "MainPID") for m in machines.hosts} == pids

    cleanup = run("engine-cleanup", "--root", str(engine_root), "--accept-defaults", REMOVE)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert before.check("getent passwd ovirt").startswith("ovirt:"), "a user that was there before is kept"
    for machine in machines.hosts:
        assert machine.show(UNIT, "LoadState") == "not-found"
        assert firewall_opened(machine) == {"--permanent": False, "runtime": False}
    for machine in machines.hosts[1:]:
        assert machine.ssh("getent passwd ovirt").returncode != 0
