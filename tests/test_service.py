"""ovsetup.service and wsproxy.hostfiles without systemd: the sandbox check of the executable, a failing
system tool as one error line, and the deployed host's record of what setup wrote."""
from __future__ import annotations

import json
import shutil
import tempfile
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
