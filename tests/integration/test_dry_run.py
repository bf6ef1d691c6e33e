"""engine-setup --dry-run: what it prints is what the following real run changes, and it changes nothing.

Each test snapshots the whole root (files and folders, bytes, modes, mtimes) around the dry run, then runs
the same command for real and compares the printed (path, action, mode) set and text diffs with what the
real run did to the root."""
from __future__ import annotations

import difflib
import fnmatch
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ENGINE_ENV, command
from tests.integration.proxy.conftest import free_port, stop, wait_port

pytestmark = pytest.mark.integration
FILE_LINE = re.compile(r"^(create|change|remove) ([0-7]{4}) (\S+?)(: .*)?$")
HEADER = "--== DRY RUN: what engine-setup would change ==--"
FOOTER = "--== END OF DRY RUN: nothing was changed ==--"
SECRET = "mypass"  # the engine store's default password, in 10-setup-pki.conf


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Every file and folder below root: bytes (None for a folder), mode, mtime."""
    return {"/" + str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mode,
                                             p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def real_changes(before: dict, after: dict) -> dict[str, tuple[str, int]]:
    """The files the real run created, changed or removed, with the mode after (or before a removal)."""
    changes = {}
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if (old and old[0] is None) or (new and new[0] is None):
            continue  # folders
        if old is None:
            changes[path] = ("create", new[1] & 0o7777)
        elif new is None:
            changes[path] = ("remove", old[1] & 0o7777)
        elif old[:2] != new[:2]:
            changes[path] = ("change", new[1] & 0o7777)
    return changes


def printed(stdout: str) -> dict[str, tuple[str, int, str | None]]:
    """The report's files: path (or pattern) -> (action, mode, diff text or None for a summary line)."""
    assert HEADER in stdout and FOOTER in stdout, stdout
    lines = stdout.split(HEADER + "\n", 1)[1].split(FOOTER, 1)[0].splitlines()
    entries: dict[str, tuple[str, int, list[str] | None]] = {}
    current: list[str] | None = None
    for line in lines:
        match = FILE_LINE.match(line)
        if match:
            action, mode, path, said = match.groups()
            current = None if said else []
            entries[path] = (action, int(mode, 8), current)
        elif line.startswith(("option ", "would ")):
            current = None
        elif current is not None:
            current.append(line + "\n")
    return {path: (action, mode, None if diff is None else "".join(diff))
            for path, (action, mode, diff) in entries.items()}


def expected_diff(path: str, old: bytes | None, new: bytes | None, secrets: tuple[str, ...]) -> str:
    lines = difflib.unified_diff((old or b"").decode().splitlines(keepends=True),
                                 (new or b"").decode().splitlines(keepends=True),
                                 fromfile="/dev/null" if old is None else path,
                                 tofile="/dev/null" if new is None else path)
    text = "".join(lines)
    for secret in secrets:
        text = text.replace(secret, "**FILTERED**")
    return text


def assert_prediction(stdout: str, before: dict, after: dict, secrets: tuple[str, ...] = (SECRET,)) -> None:
    report = printed(stdout)
    real = real_changes(before, after)
    matched: dict[str, list[str]] = {entry: [] for entry in report}
    for path, (action, mode) in real.items():
        entries = [e for e in report if e == path or ("*" in e and fnmatch.fnmatch(path, e))]
        assert len(entries) == 1, f"{path} ({action}) is predicted by {entries}:\n{stdout}"
        assert report[entries[0]][:2] == (action, mode), (path, report[entries[0]][:2], (action, mode))
        matched[entries[0]].append(path)
        diff = report[entries[0]][2]
        if diff is not None:
            old, new = before.get(path, (None,))[0], after.get(path, (None,))[0]
            assert diff == expected_diff(path, old, new, secrets), path
    assert all(matched.values()), f"predicted but not changed: {[e for e, m in matched.items() if not m]}"


def test_fresh_root(tmp_path, engine_setup):
    root = tmp_path / "root"
    root.mkdir()
    dry = engine_setup(root, "--dry-run", f"--otopi-environment={ENGINE_ENV}", input="")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert list(root.iterdir()) == []  # not a folder, not a log
    assert "confirm" not in dry.stdout and SECRET not in dry.stdout and "BEGIN PRIVATE KEY" not in dry.stdout
    assert "ENGINE_PKI_ENGINE_STORE_PASSWORD=\"**FILTERED**\"" in dry.stdout
    assert "option WebSocketProxy: Off -> engine.example.test:6100" in dry.stdout
    assert dry.stdout.rstrip().endswith("Dry run of setup completed: nothing was changed")

    real = engine_setup(root, "--accept-defaults", f"--otopi-environment={ENGINE_ENV}", input=None)
    assert real.returncode == 0, real.stdout + real.stderr
    assert_prediction(dry.stdout, {}, snapshot(root))
    report = printed(dry.stdout)
    assert report["/etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass"][:2] == ("create", 0o600)
    assert report["/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf"][2].endswith("+SSL_ONLY=True\n")


def test_configured_root_with_a_port_change(tmp_path, engine_setup):
    assert engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV}").returncode == 0
    change = f"--otopi-environment={ENGINE_ENV} OVESETUP_CONFIG/websocketProxyPort=int:6200"
    before = snapshot(tmp_path)
    dry = engine_setup(tmp_path, "--dry-run", change, input="")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert snapshot(tmp_path) == before  # no byte, mode, mtime or folder changed
    assert "-PROXY_PORT=6100\n+PROXY_PORT=6200\n" in dry.stdout
    assert "option WebSocketProxy: engine.example.test:6100 -> engine.example.test:6200" in dry.stdout
    assert not [path for path in printed(dry.stdout) if path.startswith("/etc/pki/")]  # the PKI is kept

    real = engine_setup(tmp_path, "--accept-defaults", change, input=None)
    assert real.returncode == 0, real.stdout + real.stderr
    assert_prediction(dry.stdout, before, snapshot(tmp_path))


def test_refused_input_has_the_usual_exit_code_and_writes_nothing(tmp_path, engine_setup):
    log = tmp_path / "dry.log"
    root = tmp_path / "root"
    root.mkdir()
    bad = engine_setup(root, "--dry-run", f"--otopi-environment={ENGINE_ENV} OVESETUP_CONFIG/websocketProxyPort=int:0")
    real = engine_setup(root, "--otopi-environment=OVESETUP_CONFIG/websocketProxyPort=int:0")
    assert bad.returncode == real.returncode != 0 and "websocketProxyPort" in bad.stderr, bad.stderr
    assert list(root.iterdir()) == []
    logged = engine_setup(root, "--dry-run", f"--log={log}", f"--otopi-environment={ENGINE_ENV}")
    assert logged.returncode == 0 and list(root.iterdir()) == []
    text = log.read_text()
    assert "PLANNED" in text and SECRET not in text


def test_postgresql_option_is_read_not_written(tmp_path, engine_setup, engine_db):
    env = f"--otopi-environment={ENGINE_ENV} {engine_db.environment()}"
    dry = engine_setup(tmp_path, "--dry-run", env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    option = f"option WebSocketProxy: Off -> engine.example.test:6100 (the engine database {engine_db.database} on"
    assert option in dry.stdout
    assert engine_db.password not in dry.stdout
    assert engine_db.option() == ["Off"] and list(tmp_path.iterdir()) == []
    real = engine_setup(tmp_path, "--accept-defaults", env, input=None)
    assert real.returncode == 0, real.stdout + real.stderr
    assert_prediction(dry.stdout, {}, snapshot(tmp_path), (SECRET, engine_db.password))
    assert engine_db.option() == ["engine.example.test:6100"]


def test_deployment_lists_its_hosts_and_never_contacts_them(tmp_path, engine_setup):
    env = ("OVESETUP_CONFIG/websocketProxyConfig=bool:False OVESETUP_CONFIG/fqdn=str:engine.example.test "
           "OVESETUP_CONFIG/websocketProxyDeploy=str:Hosts "
           "OVESETUP_CONFIG/websocketProxySshAcceptNewHostKeys=bool:True "
           "'OVESETUP_CONFIG/websocketProxyHosts=multi-str:a.example.test 192.0.2.1' "
           "OVESETUP_CONFIG/websocketProxyPort=int:6200")
    dry = engine_setup(tmp_path, "--dry-run", f"--otopi-environment={env}")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert list(tmp_path.iterdir()) == []
    assert "would deploy the WebSocket Proxy with Ansible (hosts) to a.example.test, then" in dry.stdout
    assert "option WebSocketProxy: Off -> Host:6200" in dry.stdout
    report = printed(dry.stdout)
    assert report["/var/lib/ovirt-engine/setup/websocket-proxy-deploy.json"][:2] == ("create", 0o600)
    assert report["/etc/pki/ovirt-engine/certs/websocket-proxy-a.example.test.cer"][:2] == ("create", 0o644)
    assert "+OVESETUP_CONFIG/websocketProxyDeploy=str:hosts\n" in report[
        "/etc/ovirt-engine-setup.conf.d/20-setup-websocket-proxy-deploy.conf"][2]
    assert "Deploying the WebSocket Proxy" not in dry.stdout


def test_a_running_proxy_is_named_and_left_alone(tmp_path, engine_setup, install_on_free_port):
    root = tmp_path / "root"
    old, new = install_on_free_port(root), free_port()
    pidfile = root / "run/ovirt-websocket-proxy.pid"
    pidfile.parent.mkdir()
    proc = subprocess.Popen([command("ovirt-websocket-proxy"), "--root", str(root), "--pidfile", str(pidfile)],
                            stderr=(tmp_path / "proxy.log").open("wb"))
    try:
        wait_port(old, proc)
        before = snapshot(root)
        dry = engine_setup(root, "--dry-run", f"--otopi-environment=OVESETUP_CONFIG/websocketProxyPort=int:{new}")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert f"would tell the running proxy (pid {proc.pid}) to reload its configuration (SIGHUP)" in dry.stdout
        time.sleep(0.5)  # a reload would rebind within this
        with socket.create_connection(("127.0.0.1", old), timeout=2):
            pass  # still on the old port
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", new), timeout=1).close()
        assert snapshot(root) == before
    finally:
        stop(proc)
