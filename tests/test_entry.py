"""One error base and one entry wrapper: a user error is one line on stderr and an exit code, never a
traceback, in every console script."""
from __future__ import annotations

import importlib.metadata

import pytest

from ovcommon.errors import Error, entry
from tests.conftest import run

SCRIPTS = ("engine-setup", "engine-cleanup", "engine-config", "engine-console-ticket",
           "ovirt-websocket-proxy-host", "ovirt-websocket-proxy")


def test_every_console_script_runs_under_the_entry_wrapper():
    found = {ep.name: ep for ep in importlib.metadata.distribution("ovirt-engine-wsp").entry_points
             if ep.group == "console_scripts"}
    assert set(SCRIPTS) <= set(found)
    for name in SCRIPTS:
        main = found[name].load()
        assert getattr(main, "__wrapped__", None) is not None, f"{name} is not wrapped by ovcommon.errors.entry"


def test_the_wrapper_prints_one_line_and_returns_the_error_code(capsys):
    class Bad(Error):
        exit_code = 3

    @entry("prog")
    def main(argv):
        raise Bad("first\nsecond")

    assert main([]) == 3
    assert capsys.readouterr().err == "prog: first second\n"


def test_every_user_error_derives_from_the_one_base():
    from ovcommon.configfile import ConfigSyntaxError
    from ovcommon.ticket import TicketError
    from ovsetup.core.errors import SetupError, UsageError
    from ovsetup.options import OptionError
    from wsproxy.config import ConfigError

    for error in (ConfigSyntaxError, TicketError, SetupError, UsageError, OptionError, ConfigError):
        assert issubclass(error, Error)
    assert UsageError.exit_code == 2 and SetupError.exit_code == 1


@pytest.mark.parametrize("port", ["abc", "70000", "0"])
def test_engine_config_with_a_bad_database_port_is_one_line(tmp_path, port):
    conf = tmp_path / "etc/ovirt-engine/engine.conf.d/10-setup-database.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"ENGINE_DB_HOST=localhost\nENGINE_DB_PORT={port}\n")
    result = run("engine-config", "--root", str(tmp_path), "-g", "WebSocketProxy")
    assert result.returncode == 1
    assert result.stderr == f"engine-config: ENGINE_DB_PORT='{port}' is not a port number (1..65535)\n"
    assert result.stdout == ""
