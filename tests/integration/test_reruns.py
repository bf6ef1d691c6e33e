"""Re-runs: the post-install file answers what was asked; nothing changed means no file changed; a new
port reaches the config, the firewall service, the option and the running proxy in one run."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import command, run, tree
from tests.integration.proxy.conftest import free_port, stop, wait_port

pytestmark = pytest.mark.integration
POST = "etc/ovirt-engine-setup.conf.d/20-setup-ovirt-post.conf"
PROMPTS = ("Configure WebSocket Proxy on this host", "Host fully qualified DNS name")


def test_rerun_asks_nothing_already_answered_and_changes_no_file(tmp_path, engine_setup):
    first = engine_setup(tmp_path, input="yes\nengine.example.test\n\n")
    assert first.returncode == 0, first.stdout
    assert all(prompt in first.stdout for prompt in PROMPTS)
    post = (tmp_path / POST).read_text()
    assert "OVESETUP_CONFIG/websocketProxyConfig=bool:True\n" in post
    assert "OVESETUP_CONFIG/fqdn=str:engine.example.test\n" in post
    assert "mypass" not in post and (tmp_path / POST).stat().st_mode & 0o777 == 0o644
    before = tree(tmp_path)
    time.sleep(1.1)  # new log and answer file names carry the second
    again = engine_setup(tmp_path, input="")  # no terminal, no answer: a question would fail the run
    assert again.returncode == 0, again.stdout
    assert not any(prompt in again.stdout for prompt in PROMPTS + ("confirm installation settings",))
    assert "nothing to confirm" in again.stdout
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert all(k.startswith(("var/log/", "var/lib/ovirt-engine/setup/answers/")) for k in set(after) - set(before))


def closed_soon(port: int, timeout: float = 5.0) -> bool:
    """Nothing listens on `port` any more (within `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.05)
    return False


def test_port_change_reaches_config_firewall_option_and_running_proxy(tmp_path, engine_setup, install_on_free_port):
    old, new = install_on_free_port(tmp_path), free_port()
    pidfile = tmp_path / "run/ovirt-websocket-proxy.pid"
    pidfile.parent.mkdir()
    proc = subprocess.Popen([command("ovirt-websocket-proxy"), "--root", str(tmp_path), "--pidfile", str(pidfile)],
                            stderr=(tmp_path / "proxy.log").open("wb"))
    try:
        wait_port(old, proc)
        result = engine_setup(tmp_path, "--accept-defaults",
                              f"--otopi-environment=OVESETUP_CONFIG/websocketProxyPort=int:{new}")
        assert result.returncode == 0, result.stdout
        assert "Please confirm installation settings (OK, Cancel) [OK]: OK" in result.stdout  # a change
        assert f"Told the running proxy (pid {proc.pid}) to reload" in result.stdout
        wait_port(new, proc)
        assert closed_soon(old)
    finally:
        stop(proc)
    config = tmp_path / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf"
    assert f"PROXY_PORT={new}\n" in config.read_text()
    assert f'port="{new}"' in (tmp_path / "etc/firewalld/services/ovirt-websocket-proxy.xml").read_text()
    assert run("engine-config", "--root", str(tmp_path), "-g", "WebSocketProxy").stdout.startswith(
        f"WebSocketProxy: localhost:{new} ")
    assert f"OVESETUP_CONFIG/websocketProxyPort=int:{new}\n" in (tmp_path / POST).read_text()


def test_post_install_file_is_read_before_the_questions(tmp_path: Path, engine_setup):
    (tmp_path / POST).parent.mkdir(parents=True)
    (tmp_path / POST).write_text("[environment:default]\nOVESETUP_CONFIG/websocketProxyConfig=bool:False\n")
    result = engine_setup(tmp_path, input="\n\n")  # the deployment question (None), then the confirmation
    assert result.returncode == 0, result.stdout
    assert PROMPTS[0] not in result.stdout
    assert "Deploy the WebSocket Proxy to other machines?" in result.stdout
    assert not (tmp_path / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d").exists()


def test_upgrade_without_post_install_file_takes_answers_from_the_installed_files(tmp_path, engine_setup,
                                                                                  install_on_free_port):
    port = install_on_free_port(tmp_path, "engine.example.test")
    (tmp_path / POST).unlink()  # as an installation made before the post-install file existed
    before = {k: v for k, v in tree(tmp_path).items() if k.startswith("etc/") and k != POST}
    result = engine_setup(tmp_path, input="\n")
    assert result.returncode == 0, result.stdout
    assert not any(prompt in result.stdout for prompt in PROMPTS)
    assert {k: v for k, v in tree(tmp_path).items() if k in before} == before
    assert f"OVESETUP_CONFIG/websocketProxyPort=int:{port}\n" in (tmp_path / POST).read_text()


def test_rerun_uses_the_recorded_store_password(tmp_path, engine_setup):
    """A non-default OVESETUP_PKI/storePassword is recorded in 10-setup-pki.conf: a plain re-run uses it."""
    env = ("OVESETUP_CONFIG/websocketProxyConfig=bool:True OVESETUP_CONFIG/fqdn=str:engine.example.test "
           "OVESETUP_PKI/storePassword=str:Not-the-default-9")
    first = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={env}")
    assert first.returncode == 0, first.stdout
    before = {k: v[:2] for k, v in tree(tmp_path).items()}
    again = engine_setup(tmp_path, input="")
    assert again.returncode == 0, again.stdout
    assert {k: v[:2] for k, v in tree(tmp_path).items() if k in before} == before
    logs = list((tmp_path / "var/log/ovirt-engine/setup").glob("*.log"))
    assert len(logs) == 2 and not any("Not-the-default-9" in p.read_text() for p in logs)


def test_every_runs_answer_file_replays_on_a_fresh_machine(tmp_path, engine_setup):
    """Also a re-run that had nothing to confirm records OVESETUP_DIALOG/confirmSettings, as oVirt's
    answer files always do, so its answer file answers the confirmation on a fresh machine."""
    first = tmp_path / "first.conf"
    again = tmp_path / "again.conf"
    assert engine_setup(tmp_path / "a", f"--generate-answer={first}",
                        input="yes\nengine.example.test\n\n").returncode == 0
    rerun = engine_setup(tmp_path / "a", f"--generate-answer={again}", input="")
    assert rerun.returncode == 0 and "nothing to confirm" in rerun.stdout
    for answers, fresh in ((first, "b"), (again, "c")):
        assert "OVESETUP_DIALOG/confirmSettings=bool:True\n" in answers.read_text()
        replay = engine_setup(tmp_path / fresh, f"--config-append={answers}", input="")
        assert replay.returncode == 0, replay.stdout
        assert not any(prompt in replay.stdout for prompt in PROMPTS)
    assert (tmp_path / "b" / POST).read_bytes() == (tmp_path / "c" / POST).read_bytes()
