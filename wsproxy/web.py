"""Plain HTTP answers on the proxy's port: the console page, noVNC's files, /metrics, refusals.

Every answer closes the connection. No directory listings, no redirects, and only files below
noVNC's `core/` and `vendor/` directories are served.
"""
from __future__ import annotations

import email.utils
import http
import json
import re
from functools import lru_cache
from pathlib import Path

import jinja2

STATIC_DIR = Path(__file__).with_name("static")
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
               "form-action 'none'")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".json": "application/json"}
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]+")
NOVNC_TREES = ("core", "vendor")


def response(status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
             headers: dict[str, str] | None = None) -> bytes:
    """An HTTP/1.1 response that closes the connection, with the safe-by-default headers."""
    phrase = http.HTTPStatus(status).phrase
    if not body and status >= 400:
        body = f"{status} {phrase}\n".encode()
    lines = [f"HTTP/1.1 {status} {phrase}",
             f"Date: {email.utils.formatdate(usegmt=True)}",
             "Connection: close",
             f"Content-Length: {len(body)}",
             f"Content-Type: {content_type}",
             "Cache-Control: no-store",
             "X-Content-Type-Options: nosniff",
             "X-Frame-Options: DENY",
             "Referrer-Policy: no-referrer",
             "Content-Security-Policy: " + (headers or {}).pop("Content-Security-Policy",
                                                               "default-src 'none'; frame-ancestors 'none'")]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def console_page(parent_origins: tuple[str, ...]) -> bytes:
    html = _environment().get_template("console.html.j2").render(
        parent_origins=json.dumps(list(parent_origins)))
    return response(200, html.encode(), TYPES[".html"], {"Content-Security-Policy": CONSOLE_CSP})


def _file(base: Path, relative: str) -> bytes:
    if (not _SAFE_PATH.fullmatch(relative) or ".." in relative or "//" in relative
            or relative.startswith("/") or relative.endswith("/")):
        return response(404)
    path = (base / relative).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file() or path.suffix not in TYPES:
        return response(404)
    return response(200, path.read_bytes(), TYPES[path.suffix], {"Content-Security-Policy": CONSOLE_CSP})


def console(path: str, parent_origins: tuple[str, ...], novnc_dir: Path | None) -> bytes:
    """Answer a GET below /console/."""
    path = path.split("?", 1)[0]
    if path == "/console/":
        return console_page(parent_origins)
    if path in ("/console/console.js", "/console/console.css"):
        return _file(STATIC_DIR, path.removeprefix("/console/"))
    if path.startswith("/console/novnc/") and novnc_dir is not None:
        relative = path.removeprefix("/console/novnc/")
        if relative.split("/", 1)[0] in NOVNC_TREES:
            return _file(novnc_dir, relative)
    return response(404)


Series = dict[str, tuple[str, dict[str, float]]]  # name -> (help, {labels: value})


def metrics_text(gauges: Series, counters: Series) -> bytes:
    """Prometheus text exposition format 0.0.4."""
    out: list[str] = []
    for kind, family in (("gauge", gauges), ("counter", counters)):
        for name, (help_text, series) in family.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            out += [f"{name}{labels} {value:g}" for labels, value in series.items()]
    body = ("\n".join(out) + "\n").encode()
    return response(200, body, "text/plain; version=0.0.4; charset=utf-8")
