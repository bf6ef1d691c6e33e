import pytest

from ovcommon.paths import Root
from ovsetup.core.transaction import Transaction
from ovsetup.engine_config import main as engine_config
from ovsetup.options import OptionError, SQLiteStore, validate_websocket_proxy


@pytest.mark.parametrize("value", ["Off", "Engine:6100", "Host:6100", "engine.example.com:6100",
                                   "192.168.1.1:6100", "[::1]:6100", "[2001:db8::1]:1234", "h:65535"])
def test_engine_accepts(value):
    validate_websocket_proxy(value)


@pytest.mark.parametrize("value", ["", "off", "myengine:", "myengine", "host:-1", "host:x", "host:65536",
                                   "host:0", "a b:6100"])
def test_engine_refuses(value):
    with pytest.raises(OptionError):
        validate_websocket_proxy(value)


def test_new_store_holds_off_and_creates_no_file_on_read(tmp_path):
    store = SQLiteStore(tmp_path / "db" / "o.sqlite")
    assert store.get("WebSocketProxy") == "Off"
    assert not (tmp_path / "db").exists()


def test_aborted_write_leaves_no_database(tmp_path):
    store = SQLiteStore(tmp_path / "db" / "o.sqlite")
    tx = Transaction()
    tx.append(store.update("WebSocketProxy", "Host:6100"))
    tx.prepare()
    tx.abort()
    assert not (tmp_path / "db").exists()


def test_abort_after_commit_restores_old_value(tmp_path):
    store = SQLiteStore(tmp_path / "o.sqlite")
    for value in ("Engine:6100", "Host:6100"):
        tx = Transaction()
        tx.append(store.update("WebSocketProxy", value))
        tx.prepare()
        tx.commit()
    tx.abort()
    assert store.get("WebSocketProxy") == "Engine:6100"


def test_abort_after_commit_gives_back_the_same_bytes_and_mode(tmp_path):
    store = SQLiteStore(tmp_path / "o.sqlite")
    first = Transaction()
    first.append(store.update("WebSocketProxy", "Engine:6100"))
    first.prepare()
    first.commit()
    store.path.chmod(0o640)
    before = (store.path.read_bytes(), store.path.stat().st_mode)
    second = Transaction()
    second.append(store.update("WebSocketProxy", "Host:6100"))
    second.prepare()
    second.commit()
    assert store.get("WebSocketProxy") == "Host:6100"
    assert second.abort()
    assert (store.path.read_bytes(), store.path.stat().st_mode) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.sqlite"]


def test_engine_config_get_set(tmp_path, capsys):
    assert engine_config(["--root", str(tmp_path), "-s", "WebSocketProxy=Engine:6100"]) == 0
    assert engine_config(["--root", str(tmp_path), "-g", "WebSocketProxy"]) == 0
    assert capsys.readouterr().out == "WebSocketProxy: Engine:6100 version: general\n"
    assert engine_config(["--root", str(tmp_path), "-s", "WebSocketProxy=myengine:"]) == 1
    assert "is not Off, Engine:<port>" in capsys.readouterr().err
    assert engine_config(["--root", str(tmp_path), "-g", "NoSuchKey"]) == 1
    assert "unknown option NoSuchKey" in capsys.readouterr().err
    store = SQLiteStore(Root(tmp_path).path("/var/lib/ovirt-engine/engine-options.sqlite"))
    assert store.get("WebSocketProxy") == "Engine:6100"
