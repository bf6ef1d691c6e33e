"""The proxy host's own key, its certificate request and the checks of its certificate: what the target
side (`wsproxy.hosttool`) and the engine's PKI (`ovsetup.pki`) share. Profiles as oVirt: RSA 2048, SHA-256."""
from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEY_SIZE = 2048
RENEW_WITHIN_DAYS = 60


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def san(fqdn: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(fqdn))
    except ValueError:
        return x509.DNSName(fqdn)


def load_own_key(data: bytes):  # type: ignore[no-untyped-def]
    """Load a key that setup itself wrote to a 0600 file. The RSA consistency check guards against
    crafted keys and costs ~70 ms a key; for our own files it only slows every re-run."""
    return serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)


def make_csr(key: rsa.RSAPrivateKey, fqdn: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]))
        .add_extension(x509.SubjectAlternativeName([san(fqdn)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def certificate_problem(cert_pem_data: bytes, ca_cert: x509.Certificate, fqdn: str,
                        renew_within_days: int = RENEW_WITHIN_DAYS) -> str | None:
    """Why a certificate must be (re)issued, or None when it is fine to keep."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem_data)
    except ValueError:
        return "not a PEM certificate"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return "not issued by the engine CA"
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "has no subjectAltName"
    if fqdn not in names.get_values_for_type(x509.DNSName) and fqdn not in {
            str(ip) for ip in names.get_values_for_type(x509.IPAddress)}:
        return f"does not name {fqdn}"
    if cert.not_valid_after_utc - utcnow() < dt.timedelta(days=renew_within_days):
        return f"expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def public_keys_match(cert_pem_data: bytes, key_pem_data: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem_data)
    key = load_own_key(key_pem_data)
    return cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
