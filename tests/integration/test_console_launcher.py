"""engine-console-launcher on a root engine-setup configured: real TLS with the engine certificate, the
VM list, the CA download and fresh tickets that the proxy's verifier accepts."""
from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from ovcommon import paths, ticket
from tests.conftest import command

VNC_PASSWORD = "vnc-secret-42"
VM_LIST = """\
[vm demo]
host = 127.0.0.1
port = 5901
password_file = /etc/ovirt-engine/vnc/demo.pass

[vm tls]
host = hv1.example.test
port = 5902
ssl_target = true
password_file = /etc/ovirt-engine/vnc/tls.pass
"""


@dataclass
class Running:
    root: Path
    proxy_port: int
    port: int
    proc: subprocess.Popen
    log: Path

    def open(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cafile=str(self.root / "etc/pki/ovirt-engine/ca.pem"))
        request = urllib.request.Request(f"https://localhost:{self.port}{path}", method=method)
        try:
            with urllib.request.urlopen(request, context=ctx, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def write_vm_list(root: Path, text: str = VM_LIST) -> None:
    (root / "etc/ovirt-engine/vnc").mkdir(parents=True, exist_ok=True)
    for name in ("demo", "tls"):
        secret = root / f"etc/ovirt-engine/vnc/{name}.pass"
        secret.write_text(f"{VNC_PASSWORD}\n")
        secret.chmod(0o600)
    (root / "etc/ovirt-engine/console-launcher.conf").write_text(text)


def launcher(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([command("engine-console-launcher"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def running(tmp_path: Path, install_on_free_port) -> Iterator[Running]:
    root = tmp_path / "root"
    proxy_port = install_on_free_port(root)
    write_vm_list(root)
    log = tmp_path / "launcher.log"
    proc = subprocess.Popen([command("engine-console-launcher"), "--root", str(root), "--port", "0", "--debug"],
                            stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("engine-console-launcher: listening on https://127.0.0.1:"), (line, log.read_text())
        port = int(line.rsplit(":", 1)[1].strip(" /\n"))
        yield Running(root, proxy_port, port, proc, log)
    finally:
        proc.terminate()
        proc.wait(10)


def test_page_lists_the_vms_with_the_proxy_console_and_serves_the_ca(running):
    status, body = running.open("/")
    page = body.decode()
    assert status == 200
    console = f'data-console="https://localhost:{running.proxy_port}/console/"'
    assert f'<tr data-vm="demo" {console}>' in page and f'<tr data-vm="tls" {console}>' in page
    assert "hv1.example.test:5902" in page
    status, script = running.open("/launcher.js")
    assert status == 200 and b"wsproxy-console-ready" in script
    assert running.open("/ca.crt") == (200, (running.root / "etc/pki/ovirt-engine/ca.pem").read_bytes())
    assert running.open("/nothing")[0] == 404


def test_each_request_gets_a_fresh_ticket_the_proxy_verifies(running):
    engine_cert = x509.load_pem_x509_certificate((running.root / "etc/pki/ovirt-engine/certs/engine.cer").read_bytes())
    verifier = ticket.Verifier(engine_cert)
    answers = [json.loads(running.open("/ticket/demo", "POST")[1]) for _ in range(2)]
    assert [set(a) for a in answers] == [{"connectionTicket", "password"}] * 2
    assert all(a["password"] == VNC_PASSWORD for a in answers)
    first, second = (verifier.verify(a["connectionTicket"]) for a in answers)
    assert first.target == second.target == ticket.Target("127.0.0.1", 5901, False)
    assert first.ident != second.ident
    tls = json.loads(running.open("/ticket/tls", "POST")[1])
    assert verifier.verify(tls["connectionTicket"]).target == ticket.Target("hv1.example.test", 5902, True)
    assert running.open("/ticket/nosuch", "POST")[0] == 404
    assert running.open("/ticket/demo")[0] == 404  # GET never hands out a ticket

    log = running.log.read_text()
    assert "ticket for demo (127.0.0.1:5901) handed to 127.0.0.1" in log
    for secret in (VNC_PASSWORD, answers[0]["connectionTicket"], answers[1]["connectionTicket"]):
        assert secret not in log
    cmdline = Path(f"/proc/{running.proc.pid}/cmdline").read_bytes()
    assert VNC_PASSWORD.encode() not in cmdline


def test_bad_vm_list_is_one_line_naming_the_file_and_the_key(tmp_path, install_on_free_port):
    root = tmp_path / "root"
    install_on_free_port(root)
    missing = launcher(root, "--port", "0")
    assert missing.returncode == 1
    assert missing.stderr == (f"engine-console-launcher: no VM list at {root}/etc/ovirt-engine/console-launcher.conf:"
                              " add [vm NAME] sections with host, port, ssl_target, password_file\n")
    write_vm_list(root, VM_LIST.replace("port = 5902", "port = 59o2"))
    bad = launcher(root, "--port", "0")
    assert bad.returncode == 1
    assert bad.stderr == (f"engine-console-launcher: {root}/etc/ovirt-engine/console-launcher.conf [vm tls]: "
                          "port is not a port number\n")


def test_without_setup_it_says_to_run_engine_setup(tmp_path):
    write_vm_list(tmp_path)
    result = launcher(tmp_path, "--port", "0")
    assert result.returncode == 1
    assert result.stderr == (f"engine-console-launcher: ENGINE_PKI_ENGINE_STORE_PASSWORD is not set in "
                             f"{tmp_path}{paths.ENGINE_PKI_CONFIG}; run engine-setup first\n")
