"""engine-setup and engine-config against a real PostgreSQL engine database."""
from __future__ import annotations

import os
import socket

import pytest

from tests.conftest import ENGINE_ENV, run, tree

pytestmark = pytest.mark.integration
DB_CONF = "etc/ovirt-engine/engine.conf.d/10-setup-database.conf"


def test_setup_writes_the_option_and_engine_config_reads_it_back(tmp_path, engine_setup, engine_db):
    result = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV} {engine_db.environment()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert engine_db.option() == ["engine.example.test:6100"]
    conf = tmp_path / DB_CONF
    assert conf.stat().st_mode & 0o777 == 0o600
    assert f'ENGINE_DB_PORT="{engine_db.port}"' in conf.read_text()
    assert not (tmp_path / "var/lib/ovirt-engine/engine-options.sqlite").exists()
    got = run("engine-config", "--root", str(tmp_path), "-g", "WebSocketProxy")
    assert got.stdout == "WebSocketProxy: engine.example.test:6100 version: general\n"
    assert run("engine-config", "--root", str(tmp_path), "-s", "WebSocketProxy=Host:6200").returncode == 0
    assert engine_db.option() == ["Host:6200"]
    logs = "".join(p.read_text() for p in (tmp_path / "var/log/ovirt-engine/setup").glob("*.log"))
    assert engine_db.password not in logs + result.stdout


def test_recorded_database_is_found_by_a_rerun_and_a_missing_row_is_inserted(tmp_path, engine_setup, engine_db):
    first = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV} {engine_db.environment()}")
    assert first.returncode == 0, first.stdout
    before = {k: v for k, v in tree(tmp_path).items() if k.startswith("etc/")}
    same = engine_setup(tmp_path, "--accept-defaults")  # everything found in the recorded files
    assert same.returncode == 0, same.stdout
    assert {k: v for k, v in tree(tmp_path).items() if k.startswith("etc/")} == before
    engine_db.sql("delete from vdc_options where option_name = 'WebSocketProxy'")
    rerun = engine_setup(tmp_path, "--accept-defaults",
                         f"--otopi-environment={ENGINE_ENV} OVESETUP_CONFIG/websocketProxyPort=int:6300")
    assert rerun.returncode == 0, rerun.stdout
    assert engine_db.option() == ["engine.example.test:6300"]
    assert engine_db.sql("select default_value from vdc_options where option_name = 'WebSocketProxy'") == [("Off",)]


def test_failure_after_the_database_write_leaves_the_old_value(tmp_path, engine_setup, engine_db):
    engine_db.sql("update vdc_options set option_value = 'Engine:6100' where option_name = 'WebSocketProxy'")
    forced = {**os.environ, "OTOPI_FORCE_FAIL_STAGE": "STAGE_MISC"}
    result = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV} {engine_db.environment()}",
                          env=forced)
    assert result.returncode == 1
    assert "back as it was" in result.stdout
    assert engine_db.option() == ["Engine:6100"]
    assert not (tmp_path / DB_CONF).exists()
    closeup = {**os.environ, "OTOPI_FORCE_FAIL_STAGE": "STAGE_CLOSEUP"}  # after the database commit
    result = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV} {engine_db.environment()}",
                          env=closeup)
    assert result.returncode == 1
    assert engine_db.option() == ["Engine:6100"]


def test_unreachable_database_and_missing_table_name_host_port_and_database(tmp_path, engine_setup, engine_db):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = f"{ENGINE_ENV} {engine_db.environment()} OVESETUP_DB/port=int:{closed}"
    result = engine_setup(tmp_path / "a", "--accept-defaults", f"--otopi-environment={env}")
    assert result.returncode == 1
    assert f"cannot connect to the engine database engine on 127.0.0.1:{closed}" in result.stdout
    assert not (tmp_path / "a/etc").exists()
    engine_db.sql("alter table vdc_options rename to vdc_options_gone")
    try:
        result = engine_setup(tmp_path / "b", "--accept-defaults",
                              f"--otopi-environment={ENGINE_ENV} {engine_db.environment()}")
    finally:
        engine_db.sql("alter table vdc_options_gone rename to vdc_options")
    assert result.returncode == 1
    assert f"the engine database engine on 127.0.0.1:{engine_db.port} has no vdc_options table" in result.stdout
    wrong = f"{ENGINE_ENV} {engine_db.environment()} OVESETUP_DB/password=str:Wr0ng-pass"
    result = engine_setup(tmp_path / "c", "--accept-defaults", f"--otopi-environment={wrong}")
    assert result.returncode == 1 and "password authentication failed" in result.stdout
    assert "Wr0ng-pass" not in result.stdout + result.stderr

