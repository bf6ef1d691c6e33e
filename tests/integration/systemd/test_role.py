"""The role's systemd branch on machines that boot systemd: the service user, the hardened unit reaching
`active` (Type=notify) only once the proxy listens, firewalld opened and closed, re-runs that reload for a
config change (a console stays open) and restart only for a port change, a console through it to the
machine's own Xvnc, and removal of everything the role made."""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import command, run
from tests.integration.deploy.test_deploy import engine_setup, handshake, option
from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import console_login, login_across
from tests.integration.systemd.conftest import Machine, Machines

T = TypeVar("T")
pytestmark = pytest.mark.integration
PORT = 6100
UNIT = "ovirt-websocket-proxy.service"
SERVICE = "ovirt-websocket-proxy"
REMOVE = "--otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True"


def ticket(root: Path, address: str, port: int, *args: str) -> str:
    result = run("engine-console-ticket", "--root", str(root), "--host", address, "--port", str(port), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


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
    return console_login(f"wss://{machine.address}:{port}/{ticket(engine_root, target, 5977)}", VNC_PASSWORD,
                         machine.fqdn, cafile=str(engine_root / "etc/pki/ovirt-engine/ca.pem"))


@pytest.fixture(scope="module")
def deployed(sdmachines_factory, wheelhouse_tar, tmp_path_factory) -> tuple[Path, Machines]:
    """One machine with firewalld running, the proxy deployed to it in Remote mode (firewalld filtering first)."""
    from ovcommon.paths import Root
    from ovsetup import deploy

    engine_root = tmp_path_factory.mktemp("engine") / "root"
    cache = Root(engine_root).path(deploy.WHEELHOUSE_DIR)
    cache.mkdir(parents=True)
    shutil.copy(wheelhouse_tar, cache / wheelhouse_tar.name)
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
    return engine_root, machines


def test_remote_mode_runs_a_service_behind_an_opened_firewall(deployed):
    engine_root, machines = deployed
    machine = machines.hosts[0]
    assert option(engine_root) == f"{machine.fqdn}:{PORT}"
    assert machine.show(UNIT, "ActiveState") == "active" and machine.show(UNIT, "Type") == "notify"
    assert machine.show(UNIT, "UnitFileState") == "enabled"
    assert machine.show(UNIT, "User") == "ovirt"
    assert machine.check("getent passwd ovirt").startswith("ovirt:")
    assert machine.check("stat -c '%U %a' /etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass").split() == \
        ["ovirt", "600"]
    assert firewall_opened(machine) == {"--permanent": True, "runtime": True}
    assert ("DNS", machine.fqdn) in handshake(engine_root, machine)["subjectAltName"]
    assert machine.show(UNIT, "StatusText").startswith(f"Listening on port {PORT}; 0 open sessions; version ")
    # Type=notify: `systemctl restart` returns only once the proxy listens
    machine.check(f"systemctl restart {UNIT} && ss -ltnH 'sport = :{PORT}' | grep -q LISTEN")
    start_xvnc(machine)
    assert console(engine_root, machine, "127.0.0.1") == (320, 240)


def exposure(machine: Machine) -> float:
    out = machine.check(f"systemd-analyze security {UNIT} --no-pager")
    line = [x for x in out.splitlines() if "Overall exposure level" in x][0]
    print(f"\n{machine.name}: {line.strip()}")
    return float(line.split(":")[1].split()[0])


def test_the_sandboxed_unit_scores_2_or_less_and_reloads_keeping_sessions(deployed):
    engine_root, machines = deployed
    machine = machines.hosts[0]
    assert exposure(machine) <= 2.0
    assert machine.show(UNIT, "NoNewPrivileges") == "yes" and machine.show(UNIT, "ProtectSystem") == "strict"
    assert machine.show(UNIT, "CapabilityBoundingSet") == "" and machine.show(UNIT, "AmbientCapabilities") == ""
    pid = machine.show(UNIT, "MainPID")

    size, _ = across_a_session(engine_root, machine, lambda: machine.check(f"systemctl reload {UNIT}"))
    assert size == (320, 240)
    assert machine.show(UNIT, "MainPID") == pid and machine.show(UNIT, "ActiveState") == "active"
    assert "configuration reloaded" in machine.check(f"journalctl -u {UNIT} --no-pager")
    # a reload reads new config under the sandbox: a drop-in port is listened on, then the old again
    override = "/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/30-test.conf"
    machine.check(f"echo PROXY_PORT=6101 > {override} && systemctl reload {UNIT} && sleep 0.5 && "
                  "ss -ltnH 'sport = :6101' | grep -q LISTEN")
    machine.check(f"rm {override} && systemctl reload {UNIT} && sleep 0.5 && "
                  f"ss -ltnH 'sport = :{PORT}' | grep -q LISTEN")
    assert machine.show(UNIT, "MainPID") == pid

    # VeNCrypt (X509Vnc) to an Xvnc whose certificate the engine CA issued for the ticket's address
    from ovsetup import pki

    authority = pki.load_authority(engine_root / "etc/pki/ovirt-engine/ca.pem",
                                   engine_root / "etc/pki/ovirt-engine/private/ca.pem")
    key = pki.generate_key()
    machine.check("umask 077; cat > /root/vnc.pem", input=(pki.key_pem(key) + pki.cert_pem(
        pki.issue(authority, key.public_key(), "127.0.0.1"))).decode())
    machine.check("systemd-run --unit xvnc-tls Xvnc :78 -rfbport 5978 -localhost -geometry 320x240 -depth 24 "
                  "-SecurityTypes X509Vnc -X509Key /root/vnc.pem -X509Cert /root/vnc.pem "
                  "-PasswordFile /root/vncpasswd && "
                  "for _ in $(seq 50); do ss -ltn | grep -q :5978 && exit 0; sleep 0.1; done; exit 1")

    target = ticket(engine_root, "127.0.0.1", 5978, "--ssl-target")
    assert console_login(f"wss://{machine.address}:{PORT}/{target}", VNC_PASSWORD, machine.fqdn,
                         cafile=str(engine_root / "etc/pki/ovirt-engine/ca.pem")) == (320, 240)


def served_serial(machine: Machine, engine_root: Path) -> int:
    """The serial number of the certificate a new TLS connection to the proxy is shown (verified by the CA)."""
    from cryptography import x509

    context = ssl.create_default_context(cafile=str(engine_root / "etc/pki/ovirt-engine/ca.pem"))
    with socket.create_connection((machine.address, PORT), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=machine.fqdn) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_a_reload_serves_a_renewed_certificate_and_keeps_sessions(deployed):
    from cryptography import x509

    from ovsetup import pki

    engine_root, machines = deployed
    machine = machines.hosts[0]
    conf = machine.check("cat /etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf")
    path = next(line.split("=", 1)[1] for line in conf.splitlines() if line.startswith("SSL_CERTIFICATE="))
    old_pem = machine.check(f"cat {path}")
    old = x509.load_pem_x509_certificate(old_pem.encode())
    assert served_serial(machine, engine_root) == old.serial_number
    # a new certificate from the engine CA for the same name and the key that stays on the machine
    authority = pki.load_authority(engine_root / "etc/pki/ovirt-engine/ca.pem",
                                   engine_root / "etc/pki/ovirt-engine/private/ca.pem")
    new = pki.issue(authority, old.public_key(), machine.fqdn)
    assert new.serial_number != old.serial_number
    pid = machine.show(UNIT, "MainPID")
    if machine.ssh("systemctl is-active xvnc").returncode != 0:  # when run alone
        start_xvnc(machine)

    def renew_and_reload(pem: str, serial: int) -> None:
        machine.check(f"cat > {path} && systemctl reload {UNIT}", input=pem)
        deadline = time.monotonic() + 10
        while served_serial(machine, engine_root) != serial:
            assert time.monotonic() < deadline, machine.check(f"journalctl -u {UNIT} --no-pager | tail -5")
            time.sleep(0.2)


    try:
        size, _ = across_a_session(engine_root, machine,
                                   lambda: renew_and_reload(pki.cert_pem(new).decode(), new.serial_number))
        assert size == (320, 240)  # the session opened before stays open
        assert machine.show(UNIT, "MainPID") == pid
    finally:  # later tests' re-runs expect the certificate setup issued
        renew_and_reload(old_pem, old.serial_number)


def test_a_hung_proxy_is_restarted_by_the_watchdog(deployed):
    _, machines = deployed
    machine = machines.hosts[0]
    assert machine.show(UNIT, "WatchdogUSec") == "10s"
    machine.check(f"mkdir -p /run/systemd/system/{UNIT}.d && printf '[Service]\\nWatchdogSec=1\\n' "
                  f"> /run/systemd/system/{UNIT}.d/watchdog.conf && systemctl daemon-reload && "
                  f"systemctl restart {UNIT}")
    try:
        pid = machine.show(UNIT, "MainPID")
        machine.check(f"kill -STOP {pid}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if machine.show(UNIT, "MainPID") not in (pid, "0") and machine.show(UNIT, "ActiveState") == "active":
                break
            time.sleep(0.5)
        else:
            raise AssertionError(machine.check(f"systemctl status {UNIT} --no-pager; true"))
        assert "Watchdog timeout" in machine.check(f"journalctl -u {UNIT} --no-pager")
    finally:
        machine.check(f"rm -r /run/systemd/system/{UNIT}.d && systemctl daemon-reload && systemctl restart {UNIT}")


def across_a_session(engine_root: Path, machine: Machine, action: Callable[[], T]) -> tuple[tuple[int, int], T]:
    """Open a console (up to the RFB banner), run `action`, then log in on that same connection."""
    return login_across(f"wss://{machine.address}:{PORT}/{ticket(engine_root, '127.0.0.1', 5977)}", VNC_PASSWORD,
                        machine.fqdn, action, cafile=str(engine_root / "etc/pki/ovirt-engine/ca.pem"))


def test_a_rerun_that_rewrites_the_config_reloads_keeping_the_main_pid_and_an_open_console(deployed):
    """The gentlest step that is enough: the role's chooser picks a reload, and its handler takes it."""
    engine_root, machines = deployed
    machine = machines.hosts[0]
    conf = "/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf"
    if machine.ssh("systemctl is-active xvnc").returncode != 0:  # when run alone
        start_xvnc(machine)
    machine.check(f"echo '# edited by hand' >> {conf}")  # configure writes setup's content back
    pid = machine.show(UNIT, "MainPID")
    size, done = across_a_session(engine_root, machine, lambda: engine_setup(engine_root, machines))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Reload the proxy (its configuration or certificates changed; open consoles stay): changed" in done.stdout
    assert "Restart the proxy" not in done.stdout and "Hand the proxy over" not in done.stdout
    assert size == (320, 240), "the console opened before the re-run was closed"
    assert machine.show(UNIT, "MainPID") == pid
    assert "# edited by hand" not in machine.check(f"cat {conf}")


def test_a_new_version_on_the_engine_is_handed_over_on_the_host_keeping_an_open_console(deployed, tmp_path):
    """The engine gets a new version of the product (a copy of this tree with its version raised, which
    engine-setup then runs from) and re-runs engine-setup: the host installs that version's wheelhouse and
    the role hands over to it."""
    from ovsetup import service
    from tests.integration.systemd.test_gentle_rerun import raised_version_tree

    engine_root, machines = deployed
    machine = machines.hosts[0]
    if machine.ssh("systemctl is-active xvnc").returncode != 0:  # when run alone
        start_xvnc(machine)
    tree, version = raised_version_tree(tmp_path)
    env = " ".join(["OVESETUP_CONFIG/websocketProxyConfig=bool:False", "OVESETUP_CONFIG/fqdn=str:engine.wsp.test",
                    f"OVESETUP_CONFIG/websocketProxySshKey=str:{machines.client_key}",
                    f"OVESETUP_CONFIG/websocketProxySshKnownHosts=str:{machines.known_hosts}"])

    def upgraded_setup() -> subprocess.CompletedProcess:
        return subprocess.run([command("engine-setup"), "--root", str(engine_root), "--accept-defaults",
                               f"--otopi-environment={env}"], capture_output=True, text=True, timeout=600,
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tree)})

    def running_version() -> str | None:
        return service.UnitState("active", 0, machine.show(UNIT, "StatusText")).version

    pid = machine.show(UNIT, "MainPID")
    assert running_version() not in (None, version)
    size, done = across_a_session(engine_root, machine, upgraded_setup)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Install the proxy into its virtualenv: changed" in done.stdout
    assert "Hand the proxy over to the new version (open consoles stay): changed" in done.stdout
    assert "Restart the proxy" not in done.stdout, "the hand-over fell back to a restart"
    assert size == (320, 240), "the console opened before the hand-over was closed"
    assert machine.show(UNIT, "MainPID") != pid
    assert running_version() == version
    assert console(engine_root, machine, "127.0.0.1") == (320, 240)
    new_pid = machine.show(UNIT, "MainPID")
    again = upgraded_setup()
    assert again.returncode == 0 and ": changed" not in again.stdout, again.stdout
    assert machine.show(UNIT, "MainPID") == new_pid
    back = engine_setup(engine_root, machines)  # the engine's own version again (later tests expect it)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "Hand the proxy over to the new version (open consoles stay): changed" in back.stdout
    assert running_version() == service.installed_version()


def test_rerun_changes_nothing_a_low_port_moves_the_opening_and_cleanup_removes_it(deployed):
    engine_root, machines = deployed
    machine = machines.hosts[0]
    pid = machine.show(UNIT, "MainPID")
    again = engine_setup(engine_root, machines)
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": changed" not in again.stdout
    assert machine.show(UNIT, "MainPID") == pid, "a no-change re-run restarted the proxy"

    low = 443
    moved = engine_setup(engine_root, machines, f"OVESETUP_CONFIG/websocketProxyPort=int:{low}")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "Restart the proxy (its port changed, or it cannot hand over; open consoles are closed): changed" \
        in moved.stdout
    assert machine.show(UNIT, "MainPID") != pid
    # below 1024: CAP_NET_BIND_SERVICE, ambient, and nothing more
    assert machine.show(UNIT, "AmbientCapabilities") == "cap_net_bind_service"
    assert machine.show(UNIT, "CapabilityBoundingSet") == "cap_net_bind_service"
    assert machine.check(f"grep -E '^Cap(Eff|Bnd|Amb)' /proc/{machine.show(UNIT, 'MainPID')}/status").split()[1::2] \
        == ["0000000000000400"] * 3
    assert exposure(machine) <= 2.0
    for scope in ("", "--permanent"):
        assert f"{low}/tcp" in machine.check(f"firewall-cmd {scope} --info-service {SERVICE}")
    assert console(engine_root, machine, "127.0.0.1", low) == (320, 240)
    machine.check(f"systemd-run --unit probe python3 -m http.server {PORT}")
    assert not reachable(machine.address, PORT), "the old port stays open"
    machine.check("systemctl stop probe")

    # cleanup follows local cleanup's rules: a file edited by hand is kept, what setup put there goes
    conf = "/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf"
    machine.check(f"echo '# edited by hand' >> {conf}")
    assert (engine_root / "var/lib/ovirt-engine/engine-options.sqlite").is_file()
    cleanup = run("engine-cleanup", "--root", str(engine_root), "--accept-defaults", REMOVE)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert machine.check(f"tail -1 {conf}") == "# edited by hand\n"
    assert machine.check("ls /etc/pki/ovirt-engine /etc/pki/ovirt-engine/certs /opt/ovirt-websocket-proxy").split() \
        == ["/etc/pki/ovirt-engine:", "certs", "keys", "/etc/pki/ovirt-engine/certs:", "/opt/ovirt-websocket-proxy:"]
    assert not (engine_root / "var/lib/ovirt-engine/engine-options.sqlite").exists(), "setup made it, cleanup keeps it"
    assert machine.show(UNIT, "LoadState") == "not-found"
    assert machine.ssh("getent passwd ovirt").returncode != 0, "the user the role made stays"
    assert firewall_opened(machine) == {"--permanent": False, "runtime": False}
    assert machine.ssh(f"test -e /etc/firewalld/services/{SERVICE}.xml").returncode != 0
    machine.check(f"systemd-run --unit probe python3 -m http.server {low} && sleep 0.5")
    assert not reachable(machine.address, low), "the port stays open after cleanup"


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
