"""Certificate renewal on a re-run: an expiring proxy certificate gets a new key and the proxy serves
it; the CA and the engine certificate are renewed with their own keys."""
from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ovsetup import pki
from tests.conftest import command, tls_handshake
from tests.integration.proxy.conftest import stop, wait_port

pytestmark = pytest.mark.integration
PKI = Path("etc/pki/ovirt-engine")
QUESTION = "Renew certificates? (Yes, No) [Yes]: "


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def days_left(path: Path) -> int:
    return (load(path).not_valid_after_utc - dt.datetime.now(dt.UTC)).days


def public(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def served_certificate(port: int, ca: Path, name: str) -> bytes:
    """The DER certificate the proxy presents in a real TLS handshake, verified against `ca` for `name`."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        return tls.getpeercert(binary_form=True)


@pytest.fixture
def installed(tmp_path, install_on_free_port) -> tuple[Path, int]:
    return tmp_path, install_on_free_port(tmp_path)


def test_expiring_proxy_certificate_is_renewed_with_a_new_key_and_served(installed, engine_setup):
    root, port = installed
    ca = pki.load_authority(root / PKI / "ca.pem", root / PKI / "private/ca.pem")
    key = pki.generate_key()
    (root / PKI / "keys/websocket-proxy.key.nopass").write_bytes(pki.key_pem(key))
    (root / PKI / "certs/websocket-proxy.cer").write_bytes(pki.cert_pem(pki.issue(ca, key.public_key(), "localhost",
                                                                                   days=11)))
    assert days_left(root / PKI / "certs/websocket-proxy.cer") < 11
    declined = engine_setup(root, "--accept-defaults", "--otopi-environment=OVESETUP_PKI/renew=bool:False")
    assert declined.returncode == 0, declined.stdout
    assert days_left(root / PKI / "certs/websocket-proxy.cer") < 11
    result = engine_setup(root, "--accept-defaults")
    assert result.returncode == 0, result.stdout
    assert QUESTION + "Yes" in result.stdout
    renewed = load(root / PKI / "certs/websocket-proxy.cer")
    assert days_left(root / PKI / "certs/websocket-proxy.cer") > 390
    assert renewed.public_key().public_numbers() != key.public_key().public_numbers()  # a new key
    assert f"websocket-proxy.cer expires {renewed.not_valid_after_utc:%Y-%m-%d}" in result.stdout
    proc = subprocess.Popen([command("ovirt-websocket-proxy"), "--root", str(root)],
                            stderr=(root / "proxy.log").open("wb"))
    try:
        wait_port(port, proc)
        served = served_certificate(port, root / PKI / "ca.pem", "localhost")
    finally:
        stop(proc)
    assert served == renewed.public_bytes(serialization.Encoding.DER)
    again = engine_setup(root, "--accept-defaults")
    assert again.returncode == 0 and QUESTION not in again.stdout


def test_ca_and_engine_certificates_are_renewed_with_their_own_keys(installed, engine_setup):
    root, _ = installed
    ca = pki.load_authority(root / PKI / "ca.pem", root / PKI / "private/ca.pem")
    now = dt.datetime.now(dt.UTC)
    short_ca = (x509.CertificateBuilder().subject_name(ca.cert.subject).issuer_name(ca.cert.subject)
                .public_key(ca.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=10))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(ca.key, hashes.SHA256()))
    (root / PKI / "ca.pem").write_bytes(pki.cert_pem(short_ca))
    engine_key, _ = pki.load_engine_store((root / PKI / "keys/engine.p12").read_bytes(), "mypass")
    short_engine = pki.issue(ca, engine_key.public_key(), "localhost", days=11)
    (root / PKI / "keys/engine.p12").write_bytes(pki.engine_store(engine_key, short_engine, short_ca, "mypass"))
    (root / PKI / "certs/engine.cer").write_bytes(pki.cert_pem(short_engine))
    proxy_before = (root / PKI / "certs/websocket-proxy.cer").read_bytes()

    result = engine_setup(root, "--accept-defaults")
    assert result.returncode == 0, result.stdout
    assert QUESTION + "Yes" in result.stdout
    assert days_left(root / PKI / "ca.pem") > 3000 and days_left(root / PKI / "certs/engine.cer") > 390
    assert public(load(root / PKI / "ca.pem")) == public(short_ca)
    assert public(load(root / PKI / "certs/engine.cer")) == public(short_engine)
    key, cert = pki.load_engine_store((root / PKI / "keys/engine.p12").read_bytes(), "mypass")
    assert cert == load(root / PKI / "certs/engine.cer") and public(cert) == public(short_engine)
    assert (root / PKI / "certs/websocket-proxy.cer").read_bytes() == proxy_before  # valid under the renewed CA
    tls_handshake(root / PKI / "certs/websocket-proxy.cer", root / PKI / "keys/websocket-proxy.key.nopass",
                  root / PKI / "ca.pem", "localhost")
    for label in ("engine CA", "engine", "WebSocket proxy"):
        assert f"Certificate {label}: /etc/pki/ovirt-engine/" in result.stdout
