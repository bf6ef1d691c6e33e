"""The target-side steps: key and CSR only when needed, engine-side signing, the offline unit check."""
from __future__ import annotations

import pytest
from cryptography import x509

from ovcommon import paths
from ovcommon.paths import Root
from ovsetup import hosttool, pki
from wsproxy import hosttool as proxy_host


def _engine(root: Root) -> pki.Authority:
    ca = pki.create_authority("US", "Test", "engine.example")
    for target, data in ((paths.CA_CERT, pki.cert_pem(ca.cert)), (paths.CA_KEY, pki.key_pem(ca.key))):
        root.path(target).parent.mkdir(parents=True, exist_ok=True)
        root.path(target).write_bytes(data)
    return ca


def _host(tmp_path) -> tuple[Root, pki.Authority, dict]:
    """An engine root with its CA, and `proxy_host.csr` arguments for a host `h1.example` beside it."""
    root = Root(tmp_path / "engine")
    host = tmp_path / "host"
    return root, _engine(root), dict(key=host / "key", cert=host / "cert", ca=root.path(paths.CA_CERT),
                                     request=host / "host.req", fqdn="h1.example")


def test_key_stays_put_and_a_csr_is_made_only_while_no_good_certificate_exists(tmp_path):
    root, ca, args = _host(tmp_path)
    key, cert, request = args["key"], args["cert"], args["request"]
    assert proxy_host.csr(**args) is True
    assert key.stat().st_mode & 0o777 == 0o600
    first_key = key.read_bytes()
    signed = hosttool.sign(root, "h1.example", request.read_bytes())
    assert root.path(paths.REQUESTS_DIR / "websocket-proxy-h1.example.req").read_bytes() == request.read_bytes()
    assert root.path(paths.PKI_DIR / "certs" / "websocket-proxy-h1.example.cer").read_bytes() == signed
    cert.write_bytes(signed)
    assert pki.certificate_problem(cert.read_bytes(), ca.cert, "h1.example") is None
    assert proxy_host.csr(**args) is False and not request.exists()
    assert key.read_bytes() == first_key
    assert proxy_host.csr(**{**args, "fqdn": "other.example"}) is True  # a certificate for another name
    assert x509.load_pem_x509_csr(request.read_bytes()).subject.rfc4514_string() == "CN=other.example"


def test_signing_refuses_a_request_that_is_not_a_csr(tmp_path):
    root = Root(tmp_path)
    _engine(root)
    with pytest.raises(pki.PKIError):
        hosttool.sign(root, "h1.example", b"not a request")


def test_the_unit_check_reports_a_missing_program(tmp_path):
    unit = tmp_path / "ovirt-websocket-proxy.service"
    unit.write_text("[Unit]\nDescription=x\n[Service]\nExecStart=/nowhere/proxy\n[Install]\nWantedBy=multi-user.target\n")
    assert "/nowhere/proxy" in (proxy_host.verify_unit(unit) or "")
    unit.write_text(unit.read_text().replace("/nowhere/proxy", "/bin/true"))
    assert proxy_host.verify_unit(unit) is None


def test_an_expiring_certificate_brings_a_new_key_and_a_csr_for_it(tmp_path):
    root, ca, args = _host(tmp_path)
    key, cert, request = args["key"], args["cert"], args["request"]
    proxy_host.csr(**args)
    old_key = key.read_bytes()
    expiring = pki.issue(ca, pki.load_own_key(old_key).public_key(), "h1.example", days=10)
    cert.write_bytes(pki.cert_pem(expiring))
    assert proxy_host.csr(**args) is True
    assert key.read_bytes() != old_key and key.stat().st_mode & 0o777 == 0o600
    new_public = pki.load_own_key(key.read_bytes()).public_key().public_numbers()
    assert x509.load_pem_x509_csr(request.read_bytes()).public_key().public_numbers() == new_public
