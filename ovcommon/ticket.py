"""oVirt v2 console tickets: signing (engine side) and strict verification (proxy side).

A ticket is standard base64 of a JSON object `{salt, validFrom, validTo, data, signedFields,
v2_signature, certificate}`. The signature is RSA-PSS/SHA-256 (MGF1-SHA-256, maximum salt length)
over the UTF-8 values of the fields named in `signedFields`, concatenated in that order. `data` is
URL-encoded JSON `{host, port, ssl_target[, path, token]}`.

oVirt's Python decoder accepts a ticket that signs only `salt` (so `data` and the validity window
can be swapped in a re-packaged ticket). Here exactly the four fields must be signed, every field
must have its exact format, and only the configured engine certificate is trusted, never the one
carried in the ticket.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import ipaddress
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import Error

SIGNED_FIELDS = ("salt", "validFrom", "validTo", "data")
TICKET_FIELDS = frozenset({*SIGNED_FIELDS, "signedFields", "v2_signature", "certificate"})
DATA_FIELDS = frozenset({"host", "port", "ssl_target", "path", "token"})
MAX_TICKET_LENGTH = 16384
TIME_FORMAT = "%Y%m%d%H%M%S"
_TIME = re.compile(r"\d{14}")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)


def shown(names: Iterable[str], limit: int = 5, width: int = 32) -> str:
    """Attacker-chosen names for an error message: at most `limit`, each cut to `width` characters."""
    items = sorted(names)
    out = [repr(name[:width]) + ("..." if len(name) > width else "") for name in items[:limit]]
    return "[" + ", ".join(out) + (f", ... {len(items) - limit} more" if len(items) > limit else "") + "]"


class TicketError(Error):
    """A refused ticket; `reason` is a short label for logs and metrics (never the ticket)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """Where a ticket says to connect."""

    host: str
    port: int
    ssl_target: bool


@dataclass(frozen=True)
class Ticket:
    """A verified ticket: its target, when it expires, and an identity for one-use memory."""

    target: Target
    valid_to: float
    ident: bytes


def _b64decode(text: object, field: str) -> bytes:
    if not isinstance(text, str) or not _B64.fullmatch(text) or len(text) % 4:
        raise TicketError("malformed", f"{field} is not base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise TicketError("malformed", f"{field} is not base64") from None


def _parse_time(value: object, field: str) -> int:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise TicketError("malformed", f"{field} is not yyyyMMddHHmmss")
    try:
        return calendar.timegm(time.strptime(value, TIME_FORMAT))
    except ValueError:
        raise TicketError("malformed", f"{field} is not a valid time") from None


def format_time(epoch: float) -> str:
    """UTC `yyyyMMddHHmmss`, as the engine writes validFrom/validTo."""
    return time.strftime(TIME_FORMAT, time.gmtime(epoch))


def encode_data(host: str, port: int, ssl_target: bool) -> str:
    """The `data` string a ticket carries: URL-encoded compact JSON."""
    doc = json.dumps({"host": host, "port": str(port), "ssl_target": ssl_target}, separators=(",", ":"))
    return urllib.parse.quote(doc, safe="")


def parse_data(data: str) -> Target:
    """Strictly parse a ticket's `data` field into a target."""
    try:
        doc = json.loads(urllib.parse.unquote(data, errors="strict"))
    except (ValueError, UnicodeError, RecursionError):
        raise TicketError("malformed", "data is not URL-encoded JSON") from None
    if not isinstance(doc, dict):
        raise TicketError("malformed", "data is not a JSON object")
    unknown = set(doc) - DATA_FIELDS
    if unknown:
        raise TicketError("malformed", f"data has unknown fields {shown(unknown)}")
    if doc.get("path") is not None or doc.get("token") is not None:
        raise TicketError("unsupported", "KubeVirt targets (path/token) are not supported")
    host, port, ssl_target = doc.get("host"), doc.get("port"), doc.get("ssl_target")
    if not isinstance(host, str) or not valid_host(host):
        raise TicketError("malformed", "data.host is not a host name or address")
    if isinstance(port, str) and re.fullmatch(r"[0-9]{1,5}", port):
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise TicketError("malformed", "data.port is not a port number")
    if not isinstance(ssl_target, bool):
        raise TicketError("malformed", "data.ssl_target is not a boolean")
    return Target(host, port, ssl_target)


def valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))


def sign(
    data: str,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    lifetime: int = 120,
    now: float | None = None,
) -> str:
    """Make a ticket the way the engine's TicketEncoder does."""
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("tickets are signed with an RSA key")
    start = time.time() if now is None else now
    fields = {
        "salt": base64.b64encode(os.urandom(8)).decode(),
        "validFrom": format_time(start),
        "validTo": format_time(start + lifetime),
        "data": data,
    }
    message = "".join(fields[name] for name in SIGNED_FIELDS).encode()
    signature = key.sign(message, _PSS, hashes.SHA256())
    ticket = {
        **fields,
        "signedFields": ",".join(SIGNED_FIELDS),
        "v2_signature": base64.b64encode(signature).decode(),
        "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }
    return base64.b64encode(json.dumps(ticket).encode()).decode()


class Verifier:
    """Checks tickets against the engine certificate (never the one inside the ticket)."""

    def __init__(self, engine_cert: x509.Certificate, clock_skew: int = 5,
                 clock: Callable[[], float] = time.time) -> None:
        public_key = engine_cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("the engine certificate does not hold an RSA key")
        self._key = public_key
        self._skew = clock_skew
        self._clock = clock

    def verify(self, ticket: str) -> Ticket:
        """Return the verified ticket, or raise TicketError with the reason."""
        if not ticket or len(ticket) > MAX_TICKET_LENGTH:
            raise TicketError("malformed", "empty or too long")
        try:
            doc = json.loads(_b64decode(ticket, "ticket"))
        except (ValueError, UnicodeError, RecursionError):  # RecursionError: deeply nested arrays
            raise TicketError("malformed", "not base64 JSON") from None
        if not isinstance(doc, dict):
            raise TicketError("malformed", "not a JSON object")
        missing = TICKET_FIELDS - {"certificate"} - set(doc)
        if missing:
            raise TicketError("malformed", f"missing {sorted(missing)}")
        unknown = set(doc) - TICKET_FIELDS
        if unknown:
            raise TicketError("malformed", f"unknown fields {shown(unknown)}")
        for name in (*SIGNED_FIELDS, "signedFields", "v2_signature"):
            if not isinstance(doc[name], str):
                raise TicketError("malformed", f"{name} is not a string")
        if "certificate" in doc and not isinstance(doc["certificate"], str):
            raise TicketError("malformed", "certificate is not a string")
        order = [name.strip() for name in doc["signedFields"].split(",")]
        if len(order) != len(SIGNED_FIELDS) or set(order) != set(SIGNED_FIELDS):
            raise TicketError("signed-fields", "salt, validFrom, validTo and data must all be signed")
        if len(_b64decode(doc["salt"], "salt")) != 8:
            raise TicketError("malformed", "salt is not 8 bytes")
        valid_from = _parse_time(doc["validFrom"], "validFrom")
        valid_to = _parse_time(doc["validTo"], "validTo")
        if valid_to < valid_from:
            raise TicketError("malformed", "validTo is before validFrom")
        signature = _b64decode(doc["v2_signature"], "v2_signature")
        try:
            message = "".join(doc[name] for name in order).encode()
        except UnicodeEncodeError:  # a lone surrogate (\ud800) in JSON: no UTF-8 form, so never signed
            raise TicketError("malformed", "a signed field is not valid Unicode") from None
        try:
            self._key.verify(signature, message, _PSS, hashes.SHA256())
        except InvalidSignature:
            raise TicketError("signature", "does not verify with the engine certificate") from None
        now = self._clock()
        if now < valid_from - self._skew:
            raise TicketError("not-yet-valid", f"valid from {doc['validFrom']}")
        if now > valid_to + self._skew:
            raise TicketError("expired", f"valid to {doc['validTo']}")
        target = parse_data(doc["data"])
        return Ticket(target, float(valid_to + self._skew), hashlib.sha256(signature).digest())


def load_engine_store(path: os.PathLike[str] | str, password: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The engine's signing key and certificate from its PKCS#12 store (`keys/engine.p12`)."""
    with open(path, "rb") as handle:
        key, cert, _ = pkcs12.load_key_and_certificates(handle.read(), password.encode())
    if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
        raise ValueError(f"{path} does not hold an RSA key with its certificate")
    return key, cert
