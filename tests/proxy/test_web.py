"""The console page, noVNC file serving and the response headers."""
from __future__ import annotations

from pathlib import Path

import pytest

from wsproxy import web


@pytest.fixture
def novnc(tmp_path: Path) -> Path:
    (tmp_path / "core" / "util").mkdir(parents=True)
    (tmp_path / "core" / "rfb.js").write_text("export default class RFB {}\n")
    (tmp_path / "core" / "util" / "x.js").write_text("//\n")
    (tmp_path / "secret.js").write_text("//\n")
    return tmp_path


def head(answer: bytes) -> str:
    return answer.split(b"\r\n\r\n", 1)[0].decode()


def test_console_page_headers_and_origins():
    answer = web.console("/console/?view_only=true", ("https://engine.example",), None)
    top = head(answer)
    assert top.startswith("HTTP/1.1 200 OK")
    assert "script-src 'self';" in top and "frame-ancestors 'none'" in top and "unsafe-inline" not in top
    assert "X-Frame-Options: DENY" in top and "X-Content-Type-Options: nosniff" in top
    assert b"[&#34;https://engine.example&#34;]" in answer and b"<script type=\"module\" src=\"console.js\">" in answer


def test_novnc_files(novnc):
    assert web.console("/console/novnc/core/rfb.js", (), novnc).startswith(b"HTTP/1.1 200 OK")
    assert "Content-Type: text/javascript" in head(web.console("/console/novnc/core/util/x.js", (), novnc))


@pytest.mark.parametrize("path", [
    "/console", "/console/novnc/", "/console/novnc/core", "/console/novnc/core/", "/console/novnc/secret.js",
    "/console/novnc/core/../secret.js", "/console/novnc//core/rfb.js", "/console/novnc/core//rfb.js",
    "/console/novnc/core/%2e%2e/secret.js", "/console/novnc/core/rfb.js/", "/console//", "/console/x",
])
def test_no_listing_no_redirect_no_escape(novnc, path):
    answer = web.console(path, (), novnc)
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert "Location:" not in head(answer)


def test_without_novnc_the_client_files_are_missing():
    assert web.console("/console/novnc/core/rfb.js", (), None).startswith(b"HTTP/1.1 404 ")
    assert web.console("/console/console.js", (), None).startswith(b"HTTP/1.1 200 ")
