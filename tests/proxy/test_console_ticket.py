"""engine-console-ticket: signs with keys/engine.p12, password from the 0600 setup file."""
from __future__ import annotations

import pytest

from ovcommon import paths
from ovcommon.paths import Root
from ovcommon.ticket import Target, Verifier
from ovsetup import console_ticket


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = console_ticket.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_a_ticket_the_proxy_accepts(pki, capsys):
    code, out, err = run(capsys, "--root", str(pki.root), "--host", "192.0.2.7", "--port", "5901", "--ssl-target")
    assert code == 0 and out.endswith("\n") and out.count("\n") == 1 and not err
    result = Verifier(pki.engine.cert).verify(out.strip())
    assert result.target == Target("192.0.2.7", 5901, True)


def test_lifetime(pki, capsys):
    code, out, _ = run(capsys, "--root", str(pki.root), "--host", "h", "--port", "5900", "--lifetime", "30")
    ticket = Verifier(pki.engine.cert).verify(out.strip())
    assert code == 0 and 29 <= ticket.valid_to - 5 - __import__("time").time() <= 31


def test_no_password_option():
    with pytest.raises(SystemExit):
        console_ticket.parse_args(["--host", "h", "--port", "1", "--password", "x"])


def test_wrong_store_password(pki, capsys):
    Root(pki.root).path(paths.ENGINE_PKI_CONFIG).write_text("ENGINE_PKI_ENGINE_STORE_PASSWORD=nope\n")
    code, out, err = run(capsys, "--root", str(pki.root), "--host", "h", "--port", "5900")
    assert code == 1 and not out
    assert err.startswith("engine-console-ticket: cannot open the engine key store") and err.count("\n") == 1
    assert "nope" not in err


def test_missing_password_file(pki, capsys):
    Root(pki.root).path(paths.ENGINE_PKI_CONFIG).unlink()
    code, _, err = run(capsys, "--root", str(pki.root), "--host", "h", "--port", "5900")
    assert code == 1 and "ENGINE_PKI_ENGINE_STORE_PASSWORD is not set" in err


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "x"], ["--lifetime", "0"]])
def test_bad_arguments(pki, args):
    with pytest.raises(SystemExit):
        console_ticket.parse_args(["--host", "h", "--port", "5900", *args])


def test_bad_host(pki, capsys):
    code, _, err = run(capsys, "--root", str(pki.root), "--host", "bad host", "--port", "5900")
    assert code == 1 and "--host" in err


@pytest.mark.parametrize(("value", "url_host"), [
    ("Engine:6100", "localhost:6100"),
    ("Host:6100", "192.0.2.7:6100"),
    ("proxy.example:7000", "proxy.example:7000"),
    ("[::1]:6100", "[::1]:6100"),
])
def test_url_from_the_websocketproxy_option(pki, capsys, value, url_host):
    options = pytest.importorskip("ovsetup.options")
    write = options.open_store(Root(pki.root)).update("WebSocketProxy", value)
    write.prepare()
    write.commit()
    code, out, err = run(capsys, "--root", str(pki.root), "--host", "192.0.2.7", "--port", "5900", "--url")
    assert code == 0, err
    prefix = f"wss://{url_host}/"
    assert out.startswith(prefix + "eyJ")
    assert Verifier(pki.engine.cert).verify(out.strip()[len(prefix):]).target.port == 5900


def test_url_with_ipv6_vm_host(pki, capsys):
    options = pytest.importorskip("ovsetup.options")
    write = options.open_store(Root(pki.root)).update("WebSocketProxy", "Host:6100")
    write.prepare()
    write.commit()
    code, out, _ = run(capsys, "--root", str(pki.root), "--host", "2001:db8::7", "--port", "5900", "--url")
    assert code == 0 and out.startswith("wss://[2001:db8::7]:6100/eyJ")


def test_url_when_off(pki, capsys):
    pytest.importorskip("ovsetup.options")
    code, out, err = run(capsys, "--root", str(pki.root), "--host", "h", "--port", "5900", "--url")
    assert code == 1 and not out and "WebSocketProxy is Off" in err
