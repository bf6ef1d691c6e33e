"""The engine PKI with the `cryptography` library: CA, engine signing identity, proxy certificates.

Profiles follow oVirt: RSA 2048, SHA-256, notBefore one day back, proxy certificates for 398 days with
SAN DNS:<fqdn>, key usage digitalSignature+keyEncipherment, EKU serverAuth+clientAuth (both critical).
"""
from __future__ import annotations

import datetime as dt
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ovcommon import paths
from ovcommon.certs import (  # noqa: F401 (the host-side pieces live in ovcommon; pki.* keeps naming them)
    KEY_SIZE,
    RENEW_WITHIN_DAYS,
    certificate_problem,
    generate_key,
    key_pem,
    load_own_key,
    make_csr,
    public_keys_match,
    san,
    utcnow,
)
from ovcommon.paths import Root

CA_DAYS = 3650
CERT_DAYS = 398


class PKIError(Exception):
    """A certificate or key cannot be used; the message names the file."""


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def country(self) -> str:
        return _attribute(self.cert.subject, NameOID.COUNTRY_NAME, "US")

    @property
    def organization(self) -> str:
        return _attribute(self.cert.subject, NameOID.ORGANIZATION_NAME, "Test")


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier, fallback: str) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else fallback


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def subject(country: str, organization: str, common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key_usage(*allowed: str) -> x509.KeyUsage:
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{flag: flag in allowed for flag in flags})


def create_authority(country: str, organization: str, fqdn: str) -> Authority:
    """A new self-signed CA, named like oVirt's (`CN=<fqdn>.<random>`)."""
    key = generate_key()
    name = subject(country, organization, f"{fqdn[:50]}.{x509.random_serial_number() % 100000:05d}")
    return Authority(_self_signed(key, name), key)


def common_name(cert: x509.Certificate) -> str:
    return _attribute(cert.subject, NameOID.COMMON_NAME, "")


def renew_authority(ca: Authority) -> Authority:
    """The same CA (name and key) with a new validity: what it signed stays valid, browsers that
    imported it only need the new certificate."""
    return Authority(_self_signed(ca.key, ca.cert.subject), ca.key)


def _self_signed(key: rsa.RSAPrivateKey, name: x509.Name) -> x509.Certificate:
    start = utcnow() - dt.timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(ca: Authority, public_key: rsa.RSAPublicKey, fqdn: str, days: int = CERT_DAYS) -> x509.Certificate:
    """A server/client certificate for `fqdn`, signed by `ca`."""
    start = utcnow() - dt.timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(subject(ca.country, ca.organization, fqdn)).issuer_name(ca.cert.subject)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(_key_usage("digital_signature", "key_encipherment"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=True)
        .add_extension(x509.SubjectAlternativeName([san(fqdn)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def engine_store(key: rsa.RSAPrivateKey, cert: x509.Certificate, ca: x509.Certificate, password: str) -> bytes:
    """The engine's PKCS#12 (`keys/engine.p12`), protected by the store password."""
    return pkcs12.serialize_key_and_certificates(
        b"1", key, cert, [ca], serialization.BestAvailableEncryption(password.encode()))


def load_engine_store(data: bytes, password: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, password.encode())
    except ValueError:
        raise PKIError("engine.p12: wrong store password or damaged file") from None
    if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
        raise PKIError("engine.p12: holds no RSA key and certificate")
    return key, cert


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = load_own_key(key_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot use the CA {cert_path} / {key_path}: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PKIError(f"{key_path}: the CA key is not an RSA key")
    return Authority(cert, key)


@contextmanager
def _ca_lock(ca_cert: Path) -> Iterator[None]:
    with ca_cert.open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sign_csr(ca_cert: Path, ca_key: Path, csr_pem: bytes, fqdn: str, days: int = CERT_DAYS) -> bytes:
    """Sign a proxy's CSR made on its own host; the name comes from `fqdn`, not from the request."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise PKIError(f"the certificate request for {fqdn} is not a PEM CSR") from None
    if not csr.is_signature_valid:
        raise PKIError(f"the certificate request for {fqdn} has a bad signature")
    public_key = csr.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < KEY_SIZE:
        raise PKIError(f"the certificate request for {fqdn} needs an RSA key of at least {KEY_SIZE} bits")
    with _ca_lock(ca_cert):  # one signer at a time, as pki-enroll-request.sh does with flock
        ca = load_authority(ca_cert, ca_key)
        return cert_pem(issue(ca, public_key, fqdn, days))


@dataclass(frozen=True)
class Checked:
    """One certificate a run checks: what it is, where, until when, and why it needs renewal (or None)."""

    label: str
    target: PurePosixPath
    expires: dt.datetime
    problem: str | None


def renewal_problem(cert_pem_data: bytes, *, need_san: bool = True,
                    within_days: int = RENEW_WITHIN_DAYS) -> str | None:
    """Why a certificate must be renewed: it expires within `within_days`, or it lacks a subjectAltName."""
    cert = x509.load_pem_x509_certificate(cert_pem_data)
    if need_san:
        try:
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return "has no subjectAltName"
    if cert.not_valid_after_utc - utcnow() < dt.timedelta(days=within_days):
        return f"expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def certificates_to_check(root: Root) -> list[tuple[str, PurePosixPath]]:
    """(label, target path) of every certificate below `root` a run checks: the CA, the engine's, the local
    proxy's, and the engine's copies of deployed proxies' (`certs/websocket-proxy-<fqdn>.cer`), so that
    checking needs no SSH."""
    found = [("engine CA", paths.CA_CERT), ("engine", paths.ENGINE_CERT), ("WebSocket proxy", paths.PROXY_CERT)]
    certs = root.path(paths.PKI_DIR / "certs")
    for cert in sorted(certs.glob("websocket-proxy-*.cer")) if certs.is_dir() else []:
        fqdn = cert.name.removeprefix("websocket-proxy-").removesuffix(".cer")
        found.append((f"WebSocket proxy on {fqdn}", paths.PKI_DIR / "certs" / cert.name))
    return [(label, target) for label, target in found if root.path(target).is_file()]


def check_certificates(root: Root, within_days: int = RENEW_WITHIN_DAYS) -> list[Checked]:
    """Each certificate of `certificates_to_check` with its expiry and renewal problem."""
    checked = []
    for label, target in certificates_to_check(root):
        data = root.path(target).read_bytes()
        try:
            expires = x509.load_pem_x509_certificate(data).not_valid_after_utc
        except ValueError:
            raise PKIError(f"{target} is not a PEM certificate") from None
        problem = renewal_problem(data, need_san=target != paths.CA_CERT, within_days=within_days)
        checked.append(Checked(label, target, expires, problem))
    return checked
