"""engine-setup as root on / inside a machine that boots systemd (the product installed there from the
wheelhouse): the service user in the transaction, the service started, firewalld opened in every active zone
(or, when it is not running, left alone and said so), re-runs that restart nothing, and engine-cleanup."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest

from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import console_login
from tests.integration.systemd.conftest import Machine
from tests.integration.systemd.test_role import SERVICE, UNIT, exposure, reachable, start_xvnc

pytestmark = pytest.mark.integration
PORT = 6100
VENV = "/opt/ovirt-engine-wsp"
SETUP = (f"{VENV}/bin/engine-setup --accept-defaults --otopi-environment="
         "'OVESETUP_CONFIG/websocketProxyConfig=bool:True OVESETUP_CONFIG/fqdn=str:{fqdn}{extra}'")
CLEANUP = f"{VENV}/bin/engine-cleanup --accept-defaults --otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True"


@pytest.fixture(scope="module")
def engine_wheelhouse(wheelhouse_tar, tmp_path_factory) -> Path:
    """The targets' wheelhouse plus the engine side's own requirements (Ansible and what it needs), as an
    admin of an engine with no package index prepares it with `pip download`."""
    wheels = tmp_path_factory.mktemp("engine-wheels")
    with tarfile.open(wheelhouse_tar) as archive:
        archive.extractall(wheels, filter="data")
    engine_side = [r for r in metadata.requires("ovirt-engine-wsp") or [] if "extra ==" not in r]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                    "--only-binary=:all:", "-d", str(wheels), *engine_side], check=True, timeout=600)
    archive = tmp_path_factory.mktemp("engine-wheelhouse") / "wheelhouse.tar"
    with tarfile.open(archive, "w") as out:
        out.add(wheels, arcname=".")
    return archive


@pytest.fixture(scope="module")
def machine(sdmachines_factory, engine_wheelhouse) -> Machine:
    """A machine with the product installed in a virtualenv from a wheelhouse, as an admin would."""
    machine = sdmachines_factory(1).hosts[0]
    subprocess.run(["scp", "-q", "-i", machine.client_key, "-o", "BatchMode=yes", "-o",
                    f"UserKnownHostsFile={machine.known_hosts}", str(engine_wheelhouse),
                    f"root@{machine.address}:/tmp/wheelhouse.tar"], check=True, timeout=120)
    machine.check(f"set -e; mkdir /tmp/wheels; tar -xf /tmp/wheelhouse.tar -C /tmp/wheels; python3 -m venv "
                  f"--without-pip {VENV}; {VENV}/bin/python $(echo /tmp/wheels/pip-*.whl)/pip install -q --no-index "
                  "--disable-pip-version-check --find-links /tmp/wheels ovirt-engine-wsp; rm -r /tmp/wheels*",
                  timeout=300)
    return machine


def setup(machine: Machine, extra: str = "") -> subprocess.CompletedProcess:
    return machine.ssh(SETUP.format(fqdn=machine.fqdn, extra=f" {extra}" if extra else ""), timeout=300)


def zones_with_service(machine: Machine, scope: str) -> set[str]:
    out = machine.check(f"for z in $(firewall-cmd {scope} --get-zones); do "
                        f"firewall-cmd {scope} --zone $z --query-service {SERVICE} >/dev/null && echo $z; done; true")
    return set(out.split())


def console(machine: Machine, port: int = PORT) -> tuple[int, int]:
    ca = machine.check("cat /etc/pki/ovirt-engine/ca.pem")
    ticket = machine.check(f"{VENV}/bin/engine-console-ticket --host 127.0.0.1 --port 5977").strip()
    return console_login(f"wss://{machine.address}:{port}/{ticket}", VNC_PASSWORD, machine.fqdn, cadata=ca)


def test_a_failed_run_removes_the_user_it_made(machine):
    failed = machine.ssh("OTOPI_FORCE_FAIL_STAGE=closeup " + SETUP.format(fqdn=machine.fqdn, extra=""), timeout=300)
    assert failed.returncode != 0, failed.stdout
    assert machine.ssh("getent passwd ovirt").returncode != 0, failed.stdout
    assert machine.ssh("test -e /etc/systemd/system/" + UNIT).returncode != 0


def test_without_firewalld_running_setup_starts_the_service_and_says_the_port_is_not_opened(machine):
    assert machine.ssh("systemctl is-active firewalld").stdout.strip() == "inactive"
    done = setup(machine)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"firewalld is not running: port {PORT}/tcp was not opened" in done.stdout
    assert machine.ssh("systemctl is-active firewalld").stdout.strip() == "inactive", "setup started firewalld"
    assert machine.show(UNIT, "ActiveState") == "active" and machine.show(UNIT, "User") == "ovirt"
    assert machine.check(f"{VENV}/bin/engine-config -g WebSocketProxy").split()[1] == f"{machine.fqdn}:{PORT}"
    assert exposure(machine) <= 2.0


def test_firewalld_opens_every_active_zone_a_failure_is_an_error_and_a_rerun_restarts_nothing(machine):
    machine.check("systemctl start firewalld && firewall-cmd --permanent --zone work --add-source 10.99.0.0/24 "
                  "&& firewall-cmd --reload")
    assert not reachable(machine.address, PORT), "firewalld lets the proxy's port through before setup opened it"
    pid = machine.show(UNIT, "MainPID")
    # a firewall-cmd that fails: the run fails with one line naming the command
    machine.check("printf '#!/bin/sh\\ncase \"$*\" in *--add-service*) echo \"Error: ACCESS_DENIED\" >&2; exit 13;; "
                  "esac\\nexec /usr/bin/firewall-cmd \"$@\"\\n' > /usr/local/sbin/firewall-cmd && "
                  "chmod +x /usr/local/sbin/firewall-cmd")
    try:
        refused = setup(machine)
    finally:
        machine.check("rm /usr/local/sbin/firewall-cmd")
    assert refused.returncode != 0
    assert "--add-service ovirt-websocket-proxy failed (exit 13): Error: ACCESS_DENIED" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr

    opened = setup(machine)
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert zones_with_service(machine, "--permanent") == {"public", "work"}
    assert zones_with_service(machine, "") == {"public", "work"}
    assert machine.show(UNIT, "MainPID") == pid, "opening the firewall restarted the proxy"
    assert reachable(machine.address, PORT)
    start_xvnc(machine)
    assert console(machine) == (320, 240)

    again = setup(machine)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "opened in the zones" not in again.stdout
    assert machine.show(UNIT, "MainPID") == pid, "a no-change re-run restarted the proxy"


def test_cleanup_stops_disables_closes_the_port_and_removes_the_user(machine):
    done = machine.ssh(CLEANUP, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "closed in the zones public, work" in done.stdout
    assert machine.show(UNIT, "LoadState") == "not-found"
    assert zones_with_service(machine, "--permanent") == set() and zones_with_service(machine, "") == set()
    assert machine.ssh("getent passwd ovirt").returncode != 0
    machine.check(f"systemd-run --unit probe python3 -m http.server {PORT} && sleep 0.5")
    assert not reachable(machine.address, PORT), "the port stays open after cleanup"
