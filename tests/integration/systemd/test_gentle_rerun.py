"""What a local engine-setup re-run does to the running unit, on a machine that boots systemd: the gentlest
step that is enough. A config change reloads (same MainPID, a console opened before stays open), a unit file
change alone is a daemon-reload, a port change restarts (new MainPID), and a newly installed version is
handed over to (new MainPID running the new version, the console opened before stays open). The dry run
names each step first.

The new version is real: a wheel of this source tree with only its version raised, installed over the
machine's virtualenv with pip, as an admin upgrading the product would."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

from ovsetup import service
from ovsetup.deploy.wheelhouse import SOURCE_PARTS
from tests.integration.proxy.conftest import VNC_PASSWORD
from tests.integration.proxy.rfb import login_across
from tests.integration.systemd.conftest import Machine
from tests.integration.systemd.test_local_setup import (  # noqa: F401 (fixtures)
    PORT,
    SETUP,
    VENV,
    console,
    engine_wheelhouse,
    machine,
    setup,
)
from tests.integration.systemd.test_role import UNIT, start_xvnc

pytestmark = pytest.mark.integration
CONF = "/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf"
NAME = "ovirt-websocket-proxy"


def dry_run(host: Machine, extra: str = "") -> str:
    done = host.ssh(SETUP.replace("engine-setup ", "engine-setup --dry-run ", 1).format(
        fqdn=host.fqdn, extra=f" {extra}" if extra else ""), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def timed_setup(host: Machine, step: str) -> subprocess.CompletedProcess:
    """`setup`, printing how long the whole run took (`pytest -s` shows it)."""
    started = time.monotonic()
    done = setup(host)
    print(f"\n{host.name}: engine-setup re-run with a {step}: {time.monotonic() - started:.1f} s")
    return done


def across_a_session(host: Machine, action: Callable[[], subprocess.CompletedProcess]) \
        -> tuple[tuple[int, int], subprocess.CompletedProcess]:
    """Open a console (up to the RFB banner), run `action`, then log in on that same connection."""
    ticket = host.check(f"{VENV}/bin/engine-console-ticket --host 127.0.0.1 --port 5977").strip()
    return login_across(f"wss://{host.address}:{PORT}/{ticket}", VNC_PASSWORD, host.fqdn, action,
                        cadata=host.check("cat /etc/pki/ovirt-engine/ca.pem"))


@pytest.fixture(scope="module")
def configured(request) -> Machine:
    """The machine of test_local_setup (the product installed from the wheelhouse), set up once."""
    host = request.getfixturevalue("machine")
    done = setup(host)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Starting {NAME}: it is not running" in done.stdout
    start_xvnc(host)
    return host


def test_a_config_change_reloads_keeping_the_main_pid_and_an_open_console(configured):
    host = configured
    host.check(f"echo '# edited by hand' >> {CONF}")  # the re-run writes setup's content back
    assert f"would reload the service {NAME}: its configuration or certificates changed; open consoles stay" \
        in dry_run(host)
    pid = host.show(UNIT, "MainPID")
    size, done = across_a_session(host, lambda: timed_setup(host, "reload"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Reloading {NAME}: its configuration or certificates changed; open consoles stay" in done.stdout
    assert size == (320, 240), "the console opened before the re-run was closed"
    assert host.show(UNIT, "MainPID") == pid
    assert "# edited by hand" not in host.check(f"cat {CONF}")
    assert "configuration reloaded" in host.check(f"journalctl -u {UNIT} --no-pager")


def test_a_unit_file_change_alone_is_a_daemon_reload(configured):
    host = configured
    host.check(f"echo '# edited by hand' >> /etc/systemd/system/{UNIT}")
    planned = dry_run(host)
    assert "would run systemctl daemon-reload" in planned
    assert f"would restart the service {NAME}" not in planned and f"would reload the service {NAME}" not in planned
    pid = host.show(UNIT, "MainPID")
    done = setup(host)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"The unit file of {NAME} changed: systemd re-read it" in done.stdout
    assert f"Leaving {NAME} running as it is: nothing it uses changed" in done.stdout
    assert host.show(UNIT, "MainPID") == pid and host.show(UNIT, "NeedDaemonReload") == "no"


def test_a_port_change_restarts(configured):
    host = configured
    new_port = 6200
    assert f"would restart the service {NAME}: its port changed; open consoles are closed" in dry_run(
        host, f"OVESETUP_CONFIG/websocketProxyPort=int:{new_port}")
    pid = host.show(UNIT, "MainPID")
    done = setup(host, f"OVESETUP_CONFIG/websocketProxyPort=int:{new_port}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Restarting {NAME}: its port changed; open consoles are closed" in done.stdout
    assert host.show(UNIT, "MainPID") != pid
    assert console(host, new_port) == (320, 240)
    back = setup(host, f"OVESETUP_CONFIG/websocketProxyPort=int:{PORT}")
    assert back.returncode == 0 and f"Restarting {NAME}: its port changed" in back.stdout, back.stdout


def raised_version_tree(directory: Path) -> tuple[Path, str]:
    """A copy of this source tree (what its wheel is built from) whose version is one post-release above
    the installed one; the copy and that version."""
    top = Path(__file__).resolve().parents[3]
    tree = directory / "src"
    tree.mkdir(parents=True)
    for part in SOURCE_PARTS:
        source = top / part
        if source.is_dir():
            shutil.copytree(source, tree / part, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
        else:
            shutil.copy2(source, tree / part)
    old = metadata.version("ovirt-engine-wsp")
    version = f"{Version(old).base_version}.post{(Version(old).post or 0) + 1}"
    setup_py = tree / "setup.py"
    assert f'version="{old}"' in setup_py.read_text(), "setup.py no longer spells the version as version=\"...\""
    setup_py.write_text(setup_py.read_text().replace(f'version="{old}"', f'version="{version}"'))
    return tree, version


@pytest.fixture(scope="module")
def new_version(tmp_path_factory, request) -> tuple[list[Path], str]:
    """A wheel of this source tree with its version raised, and the pip wheel that installs it (the machine's
    virtualenv has no pip)."""
    tree, version = raised_version_tree(tmp_path_factory.mktemp("new-version"))
    out = tree.parent / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                    "--wheel-dir", str(out), str(tree)], check=True, timeout=600)
    with tarfile.open(request.getfixturevalue("engine_wheelhouse")) as archive:
        pip = next(m for m in archive.getmembers() if Path(m.name).name.startswith("pip-"))
        archive.extract(pip, out, filter="data")
    return sorted(out.rglob("*.whl")), version


def test_a_new_version_is_handed_over_keeping_an_open_console(configured, new_version):
    host = configured
    wheels, version = new_version
    subprocess.run(["scp", "-q", "-i", host.client_key, "-o", "BatchMode=yes", "-o",
                    f"UserKnownHostsFile={host.known_hosts}", *map(str, wheels),
                    f"root@{host.address}:/tmp/"], check=True, timeout=120)
    host.check(f"{VENV}/bin/python $(echo /tmp/pip-*.whl)/pip install -q --no-index --no-deps --force-reinstall "
                  f"--disable-pip-version-check /tmp/ovirt_engine_wsp-*.whl", timeout=300)
    assert service.UnitState("active", 0, host.show(UNIT, "StatusText")).version not in (None, version)
    assert f"would hand over to the new version {version} (SIGUSR2 to the main process of {NAME}" in dry_run(host)
    pid = host.show(UNIT, "MainPID")
    size, done = across_a_session(host, lambda: timed_setup(host, "hand-over"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Handing {NAME} over to version {version}: version {version} is installed" in done.stdout
    assert "The hand-over" not in done.stdout, done.stdout  # the fallback's warning
    assert size == (320, 240), "the console opened before the hand-over was closed"
    assert host.show(UNIT, "MainPID") != pid
    assert service.UnitState("active", 0, host.show(UNIT, "StatusText")).version == version
    assert "hand-over: successor" in host.check(f"journalctl -u {UNIT} --no-pager")
    assert console(host) == (320, 240)
    new_pid = host.show(UNIT, "MainPID")
    again = setup(host)
    assert again.returncode == 0 and f"Leaving {NAME} running as it is" in again.stdout, again.stdout
    assert host.show(UNIT, "MainPID") == new_pid
