"""Unauthenticated requests built to break the proxy's request handling, through the real daemon:
each gets an HTTP answer, exactly one log line with a `wsproxy_refused_total` reason (attacker text
capped), and never an unhandled exception."""
from __future__ import annotations

import base64
import json
import re
import time

import pytest

from ovcommon import ticket as tk
from tests.integration.proxy.wsraw import exchange

pytestmark = pytest.mark.integration
UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")


def ask(proxy, request: str) -> tuple[int, bytes]:
    answer = exchange(proxy.port, proxy.ca_file, request.encode("utf-8", "surrogatepass"))
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match, f"no HTTP answer: {answer[:100]!r}"
    return int(match.group(1)), answer


def metrics(proxy) -> str:
    return ask(proxy, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")[1].decode()


def assert_one_refusal(proxy, reason: str) -> str:
    time.sleep(0.2)
    log = proxy.log()
    assert "Traceback" not in log and "exception was never retrieved" not in log, log[-2000:]
    lines = [line for line in log.splitlines() if " refused " in line]
    assert len(lines) == 1 and f"refused {reason} (" in lines[0], lines
    assert f'wsproxy_refused_total{{reason="{reason}"}} 1' in metrics(proxy)
    return lines[0]


def upgrade(path: str, headers: str = "Host: localhost\r\n") -> str:
    return f"GET /{path} HTTP/1.1\r\n{headers}{UPGRADE}\r\n"


def ticket_of(doc: dict) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_two_connection_headers(proxy):
    request = upgrade("eyJub3QiOiJhIHRpY2tldCJ9", "Host: localhost\r\nConnection: keep-alive\r\n")
    assert ask(proxy, request)[0] == 403
    assert_one_refusal(proxy, "ticket-malformed")


def test_two_host_headers(proxy):
    assert ask(proxy, upgrade("x", "Host: localhost\r\nHost: evil.example\r\n"))[0] == 400
    assert "Host header repeated" in assert_one_refusal(proxy, "bad-request")


def test_nested_json_ticket(proxy):
    nested = base64.b64encode(b"[" * 2500 + b"]" * 2500).decode()  # within the 8 KiB request line
    assert ask(proxy, upgrade(nested))[0] == 403
    assert_one_refusal(proxy, "ticket-malformed")


def test_lone_surrogate_in_data(proxy):
    now = time.time()
    doc = {"salt": base64.b64encode(b"abcdefgh").decode(), "validFrom": tk.format_time(now),
           "validTo": tk.format_time(now + 60), "data": "\ud800", "signedFields": ",".join(tk.SIGNED_FIELDS),
           "v2_signature": base64.b64encode(b"x" * 256).decode()}
    assert ask(proxy, upgrade(ticket_of(doc)))[0] == 403
    assert "not valid Unicode" in assert_one_refusal(proxy, "ticket-malformed")


def test_refusal_log_lines_cap_attacker_text(proxy):
    long_names = {("k" * 2500) + "1": "v", ("k" * 2500) + "2": "v"}
    assert ask(proxy, upgrade(ticket_of({name: "" for name in tk.TICKET_FIELDS} | long_names)))[0] == 403
    line = assert_one_refusal(proxy, "ticket-malformed")
    assert len(line) < 400, len(line)


def test_long_origin_is_capped(proxy):
    origin = "https://" + "e" * 5000 + ".example"
    assert ask(proxy, upgrade("x", f"Host: localhost\r\nOrigin: {origin}\r\n"))[0] == 403
    assert len(assert_one_refusal(proxy, "origin")) < 400


@pytest.mark.parametrize(("method", "path"), [("POST", "/metrics"), ("PUT", "/console/"), ("DELETE", "/console/"),
                                              ("OPTIONS", "/metrics")])
def test_only_get_and_head(proxy, method, path):
    status, answer = ask(proxy, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 405 and b"\r\nAllow: GET, HEAD\r\n" in answer
    assert f"method {method}" in assert_one_refusal(proxy, "method")


@pytest.mark.parametrize("path", ["/metrics", "/console/"])
def test_head_has_no_body(proxy, path):
    status, answer = ask(proxy, f"HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status == 200 and body == b""
    assert int(re.search(rb"\r\nContent-Length: (\d+)", head).group(1)) > 0


def test_upgrade_without_host(proxy):
    assert ask(proxy, upgrade("x", ""))[0] == 400
    assert "without a Host header" in assert_one_refusal(proxy, "bad-request")


def test_transfer_encoding_gets_an_answer(proxy):
    status, _ = ask(proxy, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status == 501
    assert_one_refusal(proxy, "bad-request")


def test_request_body_gets_an_answer(proxy):
    assert ask(proxy, "GET /console/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")[0] == 400
    assert_one_refusal(proxy, "bad-request")
