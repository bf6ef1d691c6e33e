import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ovsetup import pki


@pytest.fixture(scope="module")
def authority():
    return pki.create_authority("US", "example.test", "engine.example.test")


def test_proxy_certificate_profile(authority):
    key = pki.generate_key()
    cert = pki.issue(authority, key.public_key(), "proxy.example.test")
    assert cert.subject.rfc4514_string() == "CN=proxy.example.test,O=example.test,C=US"
    assert key.key_size == 2048
    assert isinstance(cert.signature_hash_algorithm, type(pki.hashes.SHA256()))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["proxy.example.test"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and set(eku.value) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    now = dt.datetime.now(dt.UTC)
    assert abs((now - cert.not_valid_before_utc) - dt.timedelta(days=1)) < dt.timedelta(minutes=1)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=398)
    cert.verify_directly_issued_by(authority.cert)


def test_sign_csr_takes_name_from_engine_not_request(tmp_path, authority):
    (tmp_path / "ca.pem").write_bytes(pki.cert_pem(authority.cert))
    (tmp_path / "ca.key").write_bytes(pki.key_pem(authority.key))
    key = pki.generate_key()
    csr = pki.make_csr(key, "evil.example.test")
    cert = x509.load_pem_x509_certificate(
        pki.sign_csr(tmp_path / "ca.pem", tmp_path / "ca.key", csr, "proxy1.example.test"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "proxy1.example.test"
    assert pki.public_keys_match(pki.cert_pem(cert), pki.key_pem(key))


def test_certificate_problem_reasons(authority):
    key = pki.generate_key()
    good = pki.cert_pem(pki.issue(authority, key.public_key(), "p.example.test"))
    assert pki.certificate_problem(good, authority.cert, "p.example.test") is None
    assert pki.certificate_problem(good, authority.cert, "q.example.test") == "does not name q.example.test"
    short = pki.cert_pem(pki.issue(authority, key.public_key(), "p.example.test", days=10))
    assert pki.certificate_problem(short, authority.cert, "p.example.test").startswith("expires on")
    other = pki.create_authority("US", "x", "other.test")
    assert pki.certificate_problem(good, other.cert, "p.example.test") == "not issued by the engine CA"


def test_engine_store_round_trip_and_wrong_password(authority):
    key = pki.generate_key()
    cert = pki.issue(authority, key.public_key(), "engine.example.test")
    data = pki.engine_store(key, cert, authority.cert, "mypass")
    loaded_key, loaded_cert = pki.load_engine_store(data, "mypass")
    assert loaded_cert == cert
    with pytest.raises(pki.PKIError, match="wrong store password"):
        pki.load_engine_store(data, "nope")


def test_renewal_problem_expiry_and_missing_san(authority):
    key = pki.generate_key()
    assert pki.renewal_problem(pki.cert_pem(pki.issue(authority, key.public_key(), "p.example.test"))) is None
    soon = pki.issue(authority, key.public_key(), "p.example.test", days=11)
    assert pki.renewal_problem(pki.cert_pem(soon)) == f"expires on {soon.not_valid_after_utc:%Y-%m-%d}"
    bare = (x509.CertificateBuilder().subject_name(pki.subject("US", "x", "p")).issuer_name(authority.cert.subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(dt.datetime.now(dt.UTC)).not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=300))
            .sign(authority.key, pki.hashes.SHA256()))
    assert pki.renewal_problem(pki.cert_pem(bare)) == "has no subjectAltName"
    assert pki.renewal_problem(pki.cert_pem(authority.cert), need_san=False) is None


def test_renewed_authority_keeps_name_and_key_so_issued_certificates_stay_valid(authority):
    leaf = pki.issue(authority, pki.generate_key().public_key(), "p.example.test")
    renewed = pki.renew_authority(authority)
    assert renewed.cert.subject == authority.cert.subject and renewed.key is authority.key
    assert renewed.cert.serial_number != authority.cert.serial_number
    assert pki.certificate_problem(pki.cert_pem(leaf), renewed.cert, "p.example.test") is None


def test_certificates_to_check_include_deployed_copies(tmp_path, authority):
    from ovcommon.paths import Root

    certs = tmp_path / "etc/pki/ovirt-engine/certs"
    certs.mkdir(parents=True)
    (tmp_path / "etc/pki/ovirt-engine/ca.pem").write_bytes(pki.cert_pem(authority.cert))
    leaf = pki.issue(authority, pki.generate_key().public_key(), "h1.example.test", days=11)
    (certs / "websocket-proxy-h1.example.test.cer").write_bytes(pki.cert_pem(leaf))
    checked = pki.check_certificates(Root(tmp_path))
    assert [(c.label, str(c.target)) for c in checked] == [
        ("engine CA", "/etc/pki/ovirt-engine/ca.pem"),
        ("WebSocket proxy on h1.example.test", "/etc/pki/ovirt-engine/certs/websocket-proxy-h1.example.test.cer")]
    assert checked[0].problem is None and checked[1].problem.startswith("expires on")
