"""engine-cleanup after engine-setup on the same root: what setup created goes, an edited file stays."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ENGINE_ENV, command, run
from tests.integration.proxy.conftest import stop, wait_port

pytestmark = pytest.mark.integration
REMOVE = "--otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True"
RECORDS = ("var/log/ovirt-engine/setup/", "var/lib/ovirt-engine/setup/answers/")  # kept, as oVirt keeps them
FIREWALL = "etc/firewalld/services/ovirt-websocket-proxy.xml"


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            and not str(p.relative_to(root)).startswith(RECORDS)}


def cleanup(root: Path, *args: str, env: dict | None = None):
    return run("engine-cleanup", "--root", str(root), *args, env=env)


@pytest.fixture
def installed(tmp_path, engine_setup) -> Path:
    (tmp_path / "etc/pki/other").mkdir(parents=True)
    (tmp_path / "etc/pki/other/keep.pem").write_text("not ours\n")
    result = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV}")
    assert result.returncode == 0, result.stdout
    return tmp_path


def test_cleanup_removes_what_setup_created_but_keeps_an_edited_file(installed):
    before_setup = {"etc/pki/other/keep.pem"}
    (installed / FIREWALL).write_text("<service>edited by the admin</service>\n")
    result = cleanup(installed, "--accept-defaults", REMOVE)
    assert result.returncode == 0, result.stdout
    assert "Remove them anyway? (Yes, No) [No]: No" in result.stdout
    assert "Do you want to proceed with the removal (OK, Cancel) [OK]: OK" in result.stdout
    assert result.stdout.rstrip().endswith("Execution of cleanup completed successfully")
    assert files(installed) == before_setup | {FIREWALL}
    assert (installed / FIREWALL).read_text() == "<service>edited by the admin</service>\n"
    assert not (installed / "etc/pki/ovirt-engine").exists()
    assert run("engine-config", "--root", str(installed), "-g", "WebSocketProxy").stdout.startswith(
        "WebSocketProxy: Off ")
    again = cleanup(installed, "--accept-defaults", REMOVE)
    assert again.returncode == 0 and "Nothing to remove" in again.stdout
    assert files(installed) == before_setup | {FIREWALL}


def test_yes_to_remove_anyway_removes_the_edited_file_too(installed):
    (installed / FIREWALL).write_text("edited\n")
    result = run("engine-cleanup", "--root", str(installed), input="yes\nyes\n\n")  # typed answers
    assert result.returncode == 0, result.stdout
    assert "Do you want to remove the WebSocket proxy? (Yes, No) [No]: " in result.stdout
    assert f"/{FIREWALL}" in result.stdout and "Remove them anyway? (Yes, No) [No]: " in result.stdout
    assert files(installed) == {"etc/pki/other/keep.pem"}


def test_the_question_defaults_to_no_and_no_removes_nothing(installed):
    before = files(installed)
    result = cleanup(installed, "--accept-defaults")
    assert "Do you want to remove the WebSocket proxy? (Yes, No) [No]: No" in result.stdout
    assert result.returncode == 0 and files(installed) == before


def test_failed_cleanup_puts_every_file_back(installed):
    before = {name: (installed / name).read_bytes() for name in files(installed)}
    forced = {**os.environ, "OTOPI_FORCE_FAIL_STAGE": "STAGE_CLOSEUP"}
    result = cleanup(installed, "--accept-defaults", REMOVE, env=forced)
    assert result.returncode == 1 and "Execution of cleanup failed" in result.stdout
    assert {name: (installed / name).read_bytes() for name in files(installed)} == before
    assert run("engine-config", "--root", str(installed), "-g", "WebSocketProxy").stdout.startswith(
        "WebSocketProxy: engine.example.test:6100 ")


def test_cleanup_sets_the_engine_database_option_off(tmp_path, engine_setup, engine_db):
    result = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV} {engine_db.environment()}")
    assert result.returncode == 0, result.stdout
    assert engine_db.option() == ["engine.example.test:6100"]
    result = cleanup(tmp_path, "--accept-defaults", REMOVE)
    assert result.returncode == 0, result.stdout
    assert engine_db.option() == ["Off"]
    assert not (tmp_path / "etc/ovirt-engine/engine.conf.d/10-setup-database.conf").exists()


def test_cleanup_stops_a_proxy_started_with_the_pidfile(tmp_path, install_on_free_port):
    port = install_on_free_port(tmp_path)
    pidfile = tmp_path / "run/ovirt-websocket-proxy.pid"
    pidfile.parent.mkdir()
    proc = subprocess.Popen([command("ovirt-websocket-proxy"), "--root", str(tmp_path), "--pidfile", str(pidfile)],
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        result = cleanup(tmp_path, "--accept-defaults", REMOVE)
        assert result.returncode == 0, result.stdout
        assert f"Stopping the running proxy (pid {proc.pid})" in result.stdout
        assert proc.wait(timeout=10) == 0
    finally:
        stop(proc)
    assert not pidfile.exists()


def test_help_names_the_keys():
    result = run("engine-cleanup", "--help")
    assert result.returncode == 0
    assert "OVESETUP_REMOVE/removeWsp" in result.stdout and "removeChangedFiles" in result.stdout
