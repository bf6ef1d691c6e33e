"""Property-based tests (hypothesis, derandomized, a fixed example count) of the parsers an outsider
can feed: the ticket decoder and the proxy's configuration loader. Whatever the input, only a value
or the module's own error type comes out."""
from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovcommon import ticket as tk
from ovcommon.configfile import ConfigSyntaxError, parse_text
from ovcommon.paths import Root
from tests.proxy.pkitools import write_override
from wsproxy import config
from wsproxy.config import KNOWN_KEYS, ConfigError, ProxyConfig

FIXED = settings(derandomize=True, max_examples=300, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
field_values = (st.text(max_size=40) | json_values
                | st.sampled_from(["", "20200101000000", "abcdefgh", "AAAA", "\ud800"]))
ticket_docs = st.dictionaries(st.sampled_from(sorted(tk.TICKET_FIELDS)) | st.text(max_size=10), field_values,
                              max_size=9)


def as_ticket(doc: object) -> str:
    return base64.b64encode(json.dumps(doc).encode("utf-8", "surrogatepass")).decode()


def verify_only_ticket_or_error(verifier: tk.Verifier, text: str) -> None:
    try:
        assert isinstance(verifier.verify(text), tk.Ticket)
    except tk.TicketError as exc:
        assert exc.reason and "\n" not in str(exc) and len(str(exc)) < 400


@pytest.fixture(scope="module")
def verifier(_pki_template) -> tk.Verifier:
    return tk.Verifier(_pki_template.engine.cert)


@pytest.fixture(scope="module")
def signed(_pki_template) -> dict:
    """A valid ticket's JSON, for mutations one field at a time."""
    engine = _pki_template.engine
    return json.loads(base64.b64decode(tk.sign(tk.encode_data("127.0.0.1", 5900, True), engine.key, engine.cert)))


nested = st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth)


@FIXED
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()))
def test_ticket_decoder_on_any_text(verifier, text):
    verify_only_ticket_or_error(verifier, text)


@FIXED
@given(ticket_docs | json_values)
def test_ticket_decoder_on_any_json(verifier, doc):
    verify_only_ticket_or_error(verifier, as_ticket(doc))


@FIXED
@given(st.sampled_from(sorted(tk.TICKET_FIELDS)), field_values | nested)
def test_ticket_decoder_on_a_valid_ticket_with_one_field_changed(verifier, signed, name, value):
    verify_only_ticket_or_error(verifier, as_ticket({**signed, name: value}))


@FIXED
@given(nested)
def test_ticket_decoder_on_nested_json(verifier, text):
    verify_only_ticket_or_error(verifier, base64.b64encode(text.encode()).decode())


@FIXED
@given(st.text(max_size=80) | json_values.map(lambda v: urllib.parse.quote(json.dumps(v)))
       | nested.map(urllib.parse.quote))
def test_ticket_data_parser(data):
    try:
        assert isinstance(tk.parse_data(data), tk.Target)
    except tk.TicketError as exc:
        assert exc.reason in ("malformed", "unsupported")


@FIXED
@given(st.text(max_size=200))
def test_keyvalue_parser(text):
    try:
        assert isinstance(parse_text(text), dict)
    except ConfigSyntaxError as exc:
        assert exc.key and "\n" not in str(exc)


config_lines = st.lists(st.tuples(st.sampled_from(sorted(KNOWN_KEYS)), st.text(max_size=30)), max_size=6).map(
    lambda pairs: "".join(f"{key}={value}\n" for key, value in pairs).encode("utf-8", "surrogatepass"))


@FIXED
@given(config_lines | st.binary(max_size=120))
def test_proxy_config_loader(pki, data):
    path: Path = write_override(pki.root, "", "20-fuzz.conf")
    path.write_bytes(data)
    try:
        assert isinstance(config.load(Root(pki.root)), ProxyConfig)
    except ConfigError as exc:
        assert exc.key and "\n" not in str(exc)
