"""The PostgreSQL option store's pure parts: where the database is, and errors without the password."""
import pytest

from ovcommon.paths import Root
from ovcommon.render import render
from ovsetup import pgstore
from ovsetup.options import OptionError, open_store, recorded_database

DB = pgstore.Database(host="db.example.test", port=5433, user="engine", password='s3cr${x}"t', database="engine")


def test_recorded_file_round_trips_through_the_template(tmp_path):
    conf = tmp_path / "etc/ovirt-engine/engine.conf.d/10-setup-database.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(render("10-setup-database.conf.j2", db=DB))
    assert recorded_database(Root(tmp_path)) == DB
    assert "s3cr" not in repr(DB)
    assert open_store(Root(tmp_path)).describe() == "the engine database engine on db.example.test:5433"


def test_no_file_or_no_host_means_the_embedded_store(tmp_path):
    assert recorded_database(Root(tmp_path)) is None
    assert pgstore.from_file_values({"ENGINE_DB_USER": "engine"}) is None
    assert open_store(Root(tmp_path)).describe().startswith("SQLite ")


def test_keys_fill_oVirt_defaults():
    assert pgstore.from_keys({"OVESETUP_DB/host": "h"}) == pgstore.Database(host="h")
    assert pgstore.from_keys({"OVESETUP_DB/password": "x"}) is None


def test_bad_port_in_the_file_is_one_clear_error():
    with pytest.raises(OptionError, match="ENGINE_DB_PORT='x' is not a port number"):
        pgstore.from_file_values({"ENGINE_DB_HOST": "h", "ENGINE_DB_PORT": "x"})


def test_error_reason_is_one_line_without_the_password():
    error = Exception(f"connection failed: password {DB.password} refused\nDETAIL: more")
    assert DB.reason(error) == "connection failed: password **FILTERED** refused"


def test_the_embedded_store_never_imports_psycopg(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from ovsetup.options import open_store; "
            "from ovcommon.paths import Root; "
            f"open_store(Root(Path({str(tmp_path)!r}))).get('WebSocketProxy'); print('psycopg' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False\n"
