"""A throwaway engine PKI laid out as engine-setup writes it, for the proxy's tests."""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ovcommon import paths
from ovcommon.paths import Root

STORE_PASSWORD = "mypass"


@dataclass
class Pair:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "test-ca") -> Pair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Pair(key, cert)


def issue(ca: Pair, cn: str, names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")) -> Pair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return Pair(key, cert)


@dataclass
class EnginePKI:
    root: Path
    ca: Pair
    engine: Pair
    proxy: Pair

    @property
    def ca_file(self) -> Path:
        return Root(self.root).path(paths.CA_CERT)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def write_engine_pki(root: Path, port: int = 6100, fqdn: str = "localhost", ca: Pair | None = None) -> EnginePKI:
    """Write CA (a new one unless given), engine store, proxy pair, 10-setup.conf and the engine.conf.d files."""
    r = Root(root)
    ca = ca or make_ca()
    engine = issue(ca, fqdn, (fqdn,))
    proxy = issue(ca, fqdn)
    _write(r.path(paths.CA_CERT), ca.cert_pem)
    _write(r.path(paths.ENGINE_CERT), engine.cert_pem)
    store = pkcs12.serialize_key_and_certificates(
        b"1", engine.key, engine.cert, [ca.cert],
        serialization.BestAvailableEncryption(STORE_PASSWORD.encode()))
    _write(r.path(paths.ENGINE_STORE), store, 0o600)
    _write(r.path(paths.PROXY_CERT), proxy.cert_pem)
    _write(r.path(paths.PROXY_KEY), proxy.key_pem, 0o600)
    _write(r.path(paths.PROXY_SETUP_CONFIG), (
        f"PROXY_PORT={port}\n"
        f"SSL_CERTIFICATE={paths.PROXY_CERT}\n"
        f"SSL_KEY={paths.PROXY_KEY}\n"
        f"CERT_FOR_DATA_VERIFICATION={paths.ENGINE_CERT}\n"
        "SSL_ONLY=True\n").encode())
    _write(r.path(paths.ENGINE_PKI_CONFIG), f'ENGINE_PKI_ENGINE_STORE_PASSWORD="{STORE_PASSWORD}"\n'.encode(), 0o600)
    _write(r.path(paths.ENGINE_PROTOCOLS_CONFIG), f'ENGINE_FQDN={fqdn}\n'.encode())
    return EnginePKI(root, ca, engine, proxy)


def write_override(root: Path, text: str, name: str = "20-test.conf") -> Path:
    path = Root(root).path(paths.PROXY_CONFIG_D) / name
    _write(path, text.encode())
    return path
