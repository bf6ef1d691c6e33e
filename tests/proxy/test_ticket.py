"""The ticket module: engine-side signing and strict proxy-side verification."""
from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from ovcommon import paths
from ovcommon import ticket as tk
from ovcommon.paths import Root
from ovcommon.ticket import Target, TicketError, Verifier
from wsproxy.replay import ReplayCache

NOW = 1_800_000_000.0


def clock(now: float = NOW):
    return lambda: now


def forge(pair, fields: dict, order: list[str] | None = None, extra: dict | None = None) -> str:
    """Sign arbitrary fields in an arbitrary order, as an attacker or another encoder would."""
    order = order if order is not None else list(tk.SIGNED_FIELDS)
    message = "".join(fields[name] for name in order).encode()
    signature = pair.key.sign(message, tk._PSS, hashes.SHA256())
    doc = {**fields, "signedFields": ",".join(order), "v2_signature": base64.b64encode(signature).decode(),
           "certificate": pair.cert.public_bytes(serialization.Encoding.PEM).decode(), **(extra or {})}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def fields(data: str | None = None, start: float = NOW, lifetime: int = 120) -> dict:
    return {"salt": base64.b64encode(b"12345678").decode(), "validFrom": tk.format_time(start),
            "validTo": tk.format_time(start + lifetime),
            "data": data if data is not None else tk.encode_data("127.0.0.1", 5900, False)}


def decode(ticket: str) -> dict:
    return json.loads(base64.b64decode(ticket))


def reason(verifier: Verifier, ticket: str) -> str:
    with pytest.raises(TicketError) as info:
        verifier.verify(ticket)
    assert not ticket or ticket not in str(info.value)
    return info.value.reason


@pytest.fixture
def verifier(pki) -> Verifier:
    return Verifier(pki.engine.cert, clock_skew=5, clock=clock())


def test_sign_verify_round_trip(pki, verifier):
    ticket = tk.sign(tk.encode_data("vnc.example", 5901, True), pki.engine.key, pki.engine.cert, now=NOW)
    assert ticket.startswith("eyJ")
    result = verifier.verify(ticket)
    assert result.target == Target("vnc.example", 5901, True)
    assert result.valid_to == NOW + 120 + 5


def test_format_matches_ovirt(pki):
    doc = decode(tk.sign("x%7B", pki.engine.key, pki.engine.cert, lifetime=60, now=NOW))
    assert set(doc) == {"salt", "validFrom", "validTo", "data", "signedFields", "v2_signature", "certificate"}
    assert doc["signedFields"] == "salt,validFrom,validTo,data"
    assert len(base64.b64decode(doc["salt"])) == 8
    assert doc["validFrom"] == "20270115080000" and doc["validTo"] == "20270115080100"
    assert doc["certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_engine_store_loads(pki):
    key, cert = tk.load_engine_store(Root(pki.root).path(paths.ENGINE_STORE), "mypass")
    assert cert == pki.engine.cert
    with pytest.raises(ValueError):
        tk.load_engine_store(Root(pki.root).path(paths.ENGINE_STORE), "wrong")


@pytest.mark.parametrize("order", [
    ["data", "validTo", "salt", "validFrom"],  # a Java HashMap's order
    ["validFrom", "data", "salt", "validTo"],
])
def test_any_order_of_the_four_fields_is_accepted(pki, verifier, order):
    ticket = forge(pki.engine, fields(), order)
    assert verifier.verify(ticket).target.port == 5900


def test_spaces_around_signed_field_names(pki, verifier):
    doc = decode(forge(pki.engine, fields()))
    doc["signedFields"] = "salt, validFrom, validTo, data"
    assert verifier.verify(base64.b64encode(json.dumps(doc).encode()).decode())


def test_port_as_number_and_ipv6_host(pki, verifier):
    data = urllib.parse.quote(json.dumps({"host": "::1", "port": 5905, "ssl_target": False}))
    assert verifier.verify(forge(pki.engine, fields(data))).target == Target("::1", 5905, False)


def test_wrong_signing_key(foreign, verifier):
    assert reason(verifier, forge(foreign, fields())) == "signature"


def test_certificate_inside_the_ticket_is_not_trusted(pki, foreign, verifier):
    ticket = forge(foreign, fields(), extra={"certificate": pki.engine.cert.public_bytes(
        serialization.Encoding.PEM).decode()})
    assert reason(verifier, ticket) == "signature"


def test_tampered_data(pki, verifier):
    doc = decode(forge(pki.engine, fields()))
    doc["data"] = tk.encode_data("10.0.0.1", 22, False)
    assert reason(verifier, base64.b64encode(json.dumps(doc).encode()).decode()) == "signature"


def test_tampered_validity(pki, verifier):
    doc = decode(forge(pki.engine, fields()))
    doc["validTo"] = tk.format_time(NOW + 86400)
    assert reason(verifier, base64.b64encode(json.dumps(doc).encode()).decode()) == "signature"


def test_repackaged_signed_fields(pki, verifier):
    """oVirt's hole: keep the signature over salt+validFrom+validTo+data, but claim only salt was
    signed, move the original values into salt, and put any data and window outside the signed set."""
    original = fields()
    signed_blob = "".join(original[name] for name in tk.SIGNED_FIELDS)
    doc = decode(forge(pki.engine, original))
    doc.update(salt=signed_blob, signedFields="salt", data=tk.encode_data("10.0.0.1", 22, False),
               validTo=tk.format_time(NOW + 10 * 86400))
    assert reason(verifier, base64.b64encode(json.dumps(doc).encode()).decode()) == "signed-fields"


@pytest.mark.parametrize("order", [
    ["salt", "data"], ["salt", "validFrom", "validTo", "data", "data"], ["salt", "validFrom", "validTo"],
])
def test_signed_fields_must_be_exactly_the_four(pki, verifier, order):
    assert reason(verifier, forge(pki.engine, fields(), order)) == "signed-fields"


def test_expired(pki, verifier):
    assert reason(verifier, forge(pki.engine, fields(start=NOW - 126, lifetime=120))) == "expired"


def test_expired_within_skew_is_accepted(pki, verifier):
    assert verifier.verify(forge(pki.engine, fields(start=NOW - 124, lifetime=120)))


def test_not_yet_valid_beyond_skew(pki, verifier):
    assert reason(verifier, forge(pki.engine, fields(start=NOW + 6))) == "not-yet-valid"


def test_not_yet_valid_within_skew_is_accepted(pki, verifier):
    assert verifier.verify(forge(pki.engine, fields(start=NOW + 4)))


def test_replayed(pki, verifier, tmp_path):
    cache = ReplayCache(tmp_path, clock())
    ticket = tk.sign(tk.encode_data("127.0.0.1", 5900, False), pki.engine.key, pki.engine.cert, now=NOW)
    cache.use(verifier.verify(ticket))
    with pytest.raises(TicketError) as info:
        cache.use(verifier.verify(ticket))
    assert info.value.reason == "replayed"
    # another process sees the same directory:
    with pytest.raises(TicketError):
        ReplayCache(tmp_path, clock()).use(verifier.verify(ticket))


def test_replay_memory_forgets_expired_tickets(pki, verifier, tmp_path):
    now = [NOW]
    (tmp_path / "used").mkdir()
    cache = ReplayCache(tmp_path / "used", lambda: now[0])
    cache.use(verifier.verify(tk.sign(tk.encode_data("h", 1, False), pki.engine.key, pki.engine.cert, now=NOW)))
    cache.purge()
    assert len(cache) == 1  # still valid: remembered
    now[0] += 200
    cache.purge()
    assert len(cache) == 0


@pytest.mark.parametrize("data", [
    urllib.parse.quote(json.dumps({"host": "h", "port": "5900", "ssl_target": False, "path": "/x", "token": "t"})),
    urllib.parse.quote(json.dumps({"host": "h", "port": "5900", "ssl_target": False, "token": "t"})),
])
def test_kubevirt_targets_are_unsupported(pki, verifier, data):
    assert reason(verifier, forge(pki.engine, fields(data))) == "unsupported"


@pytest.mark.parametrize("doc", [
    {"host": "h", "port": "5900"},
    {"host": "h", "port": "59a0", "ssl_target": False},
    {"host": "h", "port": 0, "ssl_target": False},
    {"host": "h", "port": 70000, "ssl_target": False},
    {"host": "h", "port": True, "ssl_target": False},
    {"host": "h", "port": 5900, "ssl_target": "true"},
    {"host": "bad host", "port": 5900, "ssl_target": False},
    {"host": "", "port": 5900, "ssl_target": False},
    {"host": "h", "port": 5900, "ssl_target": False, "extra": 1},
    ["h", 5900],
])
def test_malformed_data(pki, verifier, doc):
    assert reason(verifier, forge(pki.engine, fields(urllib.parse.quote(json.dumps(doc))))) == "malformed"


@pytest.mark.parametrize("change", [
    {"salt": "not base64!"}, {"salt": base64.b64encode(b"1234").decode()},
    {"validFrom": "2027-01-15 08:00"}, {"validTo": "20271315080000"},
])
def test_malformed_signed_fields(pki, verifier, change):
    assert reason(verifier, forge(pki.engine, {**fields(), **change})) == "malformed"


def test_validto_before_validfrom(pki, verifier):
    f = fields()
    f["validTo"] = tk.format_time(NOW - 10)
    assert reason(verifier, forge(pki.engine, f)) == "malformed"


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("v2_signature"),
    lambda d: d.update(signature="legacy"),
    lambda d: d.update(v2_signature=42),
    lambda d: d.update(certificate=["x"]),
])
def test_malformed_envelope(pki, verifier, mutate):
    doc = decode(forge(pki.engine, fields()))
    mutate(doc)
    assert reason(verifier, base64.b64encode(json.dumps(doc).encode()).decode()) == "malformed"


@pytest.mark.parametrize("text", ["", "eyJ", "!!!!", base64.b64encode(b"[1]").decode(), "e" * 20000,
                                  base64.urlsafe_b64encode(b'{"a":"\xff\xfe>>>"}').decode()])
def test_garbage(verifier, text):
    assert reason(verifier, text) == "malformed"


def test_nested_json_is_malformed_not_a_recursion_error(verifier):
    assert reason(verifier, base64.b64encode(b"[" * 5000 + b"]" * 5000).decode()) == "malformed"
    with pytest.raises(TicketError, match="malformed"):
        tk.parse_data(urllib.parse.quote("[" * 5000 + "]" * 5000))


def test_lone_surrogate_in_a_signed_field_is_malformed(pki, verifier):
    doc = decode(tk.sign(tk.encode_data("h", 5900, False), pki.engine.key, pki.engine.cert, now=NOW))
    doc["data"] = "\ud800"
    assert reason(verifier, base64.b64encode(json.dumps(doc).encode()).decode()) == "malformed"


def test_unknown_field_names_are_cut_in_the_message(pki, verifier):
    doc = decode(tk.sign(tk.encode_data("h", 5900, False), pki.engine.key, pki.engine.cert, now=NOW))
    doc.update({"x" * 900 + str(n): 1 for n in range(10)})
    with pytest.raises(TicketError) as info:
        verifier.verify(base64.b64encode(json.dumps(doc).encode()).decode())
    assert len(str(info.value)) < 300 and "5 more" in str(info.value)
