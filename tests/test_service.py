"""ovsetup.service and wsproxy.hostfiles without systemd: the sandbox check of the executable, a failing
system tool as one error line, the step a re-run takes with a running unit (a hand-over against a fake
`systemctl`), and the deployed host's record of what setup wrote."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovsetup import service
from ovsetup.core.errors import SetupError
from wsproxy import hostfiles


def test_an_executable_below_home_or_root_is_refused():
    problem = service.executable_problem(Path("/home/admin/venv/bin/ovirt-websocket-proxy"))
    assert problem and "below /home" in problem and "ProtectHome" in problem
    assert "below /root" in (service.executable_problem(Path("/root/.venv/bin/ovirt-websocket-proxy")) or "")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder in /tmp that others may search (pytest's own are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="wsp-service-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_an_executable_in_a_folder_others_cannot_search_is_refused(open_dir):
    folder = open_dir / "private"
    (folder / "bin").mkdir(parents=True)
    executable = folder / "bin" / "ovirt-websocket-proxy"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    folder.chmod(0o750)
    assert f"{folder} is not searchable" in (service.executable_problem(executable) or "")
    folder.chmod(0o755)
    executable.chmod(0o750)
    assert "is not readable by other users" in (service.executable_problem(executable) or "")
    executable.chmod(0o755)
    assert service.executable_problem(executable) is None


def test_a_failing_tool_is_one_line_naming_the_command():
    with pytest.raises(SetupError) as failed:
        service.run(["sh", "-c", "echo first >&2; echo 'Error: ACCESS_DENIED' >&2; exit 13"])
    assert str(failed.value).endswith("failed (exit 13): Error: ACCESS_DENIED")


def test_host_record_removes_what_setup_wrote_and_keeps_what_was_edited(tmp_path):
    prefix = tmp_path / "prefix"
    ours, edited, before = (tmp_path / name for name in ("ca.pem", "10-setup.conf", "engine.cer"))
    for path in (ours, edited, before):
        path.write_text(path.name)
    hostfiles.record(prefix, [str(ours), str(edited)], [ours, edited, before])
    record = prefix / hostfiles.RECORD
    assert set(json.loads(record.read_text())) == {str(ours), str(edited)}
    mtime = record.stat().st_mtime_ns
    hostfiles.record(prefix, [], [ours, edited, before])  # a re-run that wrote nothing keeps what it owns
    assert record.stat().st_mtime_ns == mtime
    edited.write_text("# edited by hand\n")
    assert hostfiles.remove(prefix) == {"removed": [str(ours)], "kept": [str(edited)]}
    assert not ours.exists() and edited.exists() and before.exists() and not record.exists()


RUNNING = service.UnitState("active", 100, "version 1.0; Listening on port 6100; 2 open sessions")


@pytest.mark.parametrize(("state", "installed", "port", "files", "new_code", "step"), [
    (service.UnitState("inactive", 0, ""), "1.0", True, True, False, service.Step.START),
    (service.UnitState("failed", 0, ""), "1.0", False, False, False, service.Step.START),
    (RUNNING, "1.1", True, True, False, service.Step.RESTART),  # the port wins over a new version
    (RUNNING, "1.1", False, True, False, service.Step.HAND_OVER),  # a successor reads the new config anyway
    (RUNNING, "1.0", False, False, True, service.Step.HAND_OVER),  # the role installed again, same version
    (RUNNING, "1.0", False, True, False, service.Step.RELOAD),
    (service.UnitState("reloading", 100, RUNNING.status), "1.0", False, True, False, service.Step.RELOAD),
    (RUNNING, "1.0", False, False, False, service.Step.NOTHING),
    # a proxy whose status names no version predates the hand-over: a restart runs the installed code
    (service.UnitState("active", 100, "Listening on port 6100; 0 open sessions"), "1.0", False, False, False,
     service.Step.RESTART),
])
def test_a_rerun_takes_the_gentlest_step_that_is_enough(state, installed, port, files, new_code, step):
    chosen, why = service.choose_step(state, installed, port_changed=port, files_changed=files, new_code=new_code)
    assert chosen is step, why
    assert why and "\n" not in why


def test_the_running_version_and_the_written_port_are_read_from_status_and_file():
    assert RUNNING.version == "1.0"
    assert service.UnitState("active", 1, "version 2.0.dev1+g1; 4 workers").version == "2.0.dev1+g1"
    assert service.UnitState("active", 1, "Listening on port 6100; 0 open sessions; version 1.0; 2 workers") \
        .version == "1.0"
    assert service.UnitState("active", 1, "Listening on port 6100; 0 open sessions").version is None
    assert service.UnitState("active", 1, "an older version 1.0 is listening").version is None
    assert service.proxy_port(b"# setup\nPROXY_PORT=6100\nSSL_ONLY=True\n") == "6100"
    assert service.proxy_port(b"PROXY_PORT='443'\n") == "443"
    assert service.proxy_port(None) is None and service.proxy_port(b"SSL_ONLY=True\n") is None


@pytest.fixture
def fake_systemctl(tmp_path, monkeypatch) -> Path:
    """A `systemctl` first on PATH that logs its arguments and answers `show` from the file `state`."""
    tool = tmp_path / "bin" / "systemctl"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/calls\n"
                    f"case \"$1\" in show) cat {tmp_path}/state;; kill) [ ! -e {tmp_path}/refuse ] || "
                    "{ echo 'Failed to kill unit: Access denied' >&2; exit 1; };; esac\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:{os.environ['PATH']}")
    (tmp_path / "state").write_text("ActiveState=active\nMainPID=100\nStatusText=version 1.0; 0 open sessions\n")
    return tmp_path


def test_a_hand_over_waits_for_a_new_main_pid_running_the_installed_version(fake_systemctl):
    state = fake_systemctl / "state"

    def take_over() -> None:
        time.sleep(0.3)  # the successor: first listening under the old version's name, then the new one's
        state.write_text("ActiveState=active\nMainPID=100\nStatusText=version 1.0; 0 open sessions\n")
        time.sleep(0.2)
        state.write_text("ActiveState=active\nMainPID=200\nStatusText=version 1.1; 0 open sessions\n")

    thread = threading.Thread(target=take_over)
    thread.start()
    assert service.hand_over("u", "1.1", timeout=10, poll=0.05) is None
    thread.join()
    calls = (fake_systemctl / "calls").read_text().splitlines()
    assert calls.count("kill --kill-whom=main --signal=SIGUSR2 u") == 1
    assert calls[0].startswith("show ") and len(calls) >= 4


def test_a_hand_over_that_does_not_happen_says_why_in_one_line(fake_systemctl):
    started = time.monotonic()
    problem = service.hand_over("u", "1.1", timeout=0.5, poll=0.05)
    assert problem and "\n" not in problem and 0.5 <= time.monotonic() - started < 5
    assert problem.startswith("no process of version 1.1 took over within 0.5 s; main pid 100, active")
    (fake_systemctl / "refuse").touch()
    problem = service.hand_over("u", "1.1", timeout=0.5, poll=0.05)
    assert problem == ("systemctl kill --kill-whom=main --signal=SIGUSR2 u failed (exit 1): "
                       "Failed to kill unit: Access denied")
