"""A Debian 13 machine (Python 3.13, newer than the engine's) deployed to in Remote mode: the engine selects the
wheels for the target's Python, the service runs, and a console through it logs in."""
from __future__ import annotations

import json
import tarfile

import pytest

from ovcommon.paths import Root
from tests.integration.deploy.test_deploy import engine_setup
from tests.integration.systemd.test_role import UNIT, console, firewall_opened, remote, start_xvnc

pytestmark = pytest.mark.integration
VENV = "/opt/ovirt-websocket-proxy/venv"


def test_a_debian_13_machine_gets_wheels_for_its_python_and_serves_a_console(sdmachines_factory, engine_root):
    from ovsetup.deploy.wheelhouse import ABOUT, WHEELHOUSE_DIR

    machines = sdmachines_factory(1, release="trixie")
    machine = machines.hosts[0]
    assert machine.check("python3 -c 'import sys; print(*sys.version_info[:2], sep=\".\")'").strip() == "3.13"
    machine.check("systemctl start firewalld")
    done = engine_setup(engine_root, machines, remote(machine))
    assert done.returncode == 0, done.stdout + done.stderr
    built = []
    for archive in Root(engine_root).path(WHEELHOUSE_DIR).glob("*.tar"):
        with tarfile.open(archive) as tar:
            built.append(json.load(tar.extractfile(ABOUT))["python"])
    assert "3.13" in built, built
    assert (machine.show(UNIT, "ActiveState"), machine.show(UNIT, "SubState")) == ("active", "running")
    # firewalld 2 lists the default zone as `public (default)`: opened in `public`, for the role and local setup
    assert firewall_opened(machine) == {"--permanent": True, "runtime": True}
    assert machine.check(f"{VENV}/bin/python -c 'from ovsetup import service; print(*service._zones())'").split() \
        == ["public"]
    assert machine.check(f"{VENV}/bin/python -c 'import sys; print(*sys.version_info[:2], sep=\".\")'").strip() \
        == "3.13"
    # a compiled dependency installed from a wheel built for CPython 3.13
    assert "Tag: cp313-cp313-" in machine.check(f"cat {VENV}/lib/python3.13/site-packages/uvloop-*.dist-info/WHEEL")
    start_xvnc(machine)
    assert console(engine_root, machine, "127.0.0.1") == (320, 240)
