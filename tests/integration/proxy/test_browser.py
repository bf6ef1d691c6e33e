"""Headless Chromium (Debian's) opens a parent page on another origin that postMessages the ticket and
the VNC password to the proxy's console page; noVNC connects and shows the root colour."""
from __future__ import annotations

import base64
import hashlib
import http.server
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.proxy.conftest import VNC_PASSWORD, free_port

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
NOVNC = Path("/usr/local/share/novnc")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PARENT_PAGE = """<!DOCTYPE html>
<html><body>
<button id="open">Open console</button>
<script>
const consoleOrigin = CONSOLE_ORIGIN;
let win = null;
window.addEventListener('message', (event) => {
  if (event.origin === consoleOrigin && event.data && event.data.type === 'wsproxy-console-ready') {
    win.postMessage({connectionTicket: TICKET, password: PASSWORD}, consoleOrigin);
  }
});
document.getElementById('open').addEventListener('click', () => {
  win = window.open(consoleOrigin + '/console/', 'console');
});
</script>
</body></html>
"""


class ParentSite:
    """The engine's stand-in: serves one page on its own origin."""

    def __init__(self, page: str) -> None:
        body = page.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def browser() -> Iterator:
    if not Path(CHROMIUM).exists() or shutil.which("Xvnc") is None:
        pytest.skip("Debian chromium and Xvnc are needed")
    if not (NOVNC / "core" / "rfb.js").exists():
        pytest.skip("noVNC is not installed (scripts/setup.d/50-proxy.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        yield playwright


def spki_pin(cert) -> str:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_novnc_console_reaches_connected_and_shows_the_root_colour(browser, proxy_factory, engine_root, xvnc,
                                                                    tmp_path):
    parent = ParentSite("")
    try:
        proxy = proxy_factory(f"CONSOLE_PARENT_ORIGINS={parent.origin}\n")
        ticket = proxy.ticket("127.0.0.1", xvnc.port)
        page_text = (PARENT_PAGE.replace("CONSOLE_ORIGIN", repr(f"https://localhost:{proxy.port}"))
                     .replace("TICKET", repr(ticket)).replace("PASSWORD", repr(VNC_PASSWORD)))
        parent.close()
        parent = ParentSite(page_text)
        proxy.root.joinpath("etc/ovirt-engine/ovirt-websocket-proxy.conf.d/20-test.conf").write_text(
            f"CONSOLE_PARENT_ORIGINS={parent.origin}\n")
        proxy.proc.send_signal(signal.SIGHUP)

        # Trust exactly the proxy's key, as a browser that imported the engine CA would trust its cert.
        args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(engine_root.proxy.cert)}"]
        chromium = browser.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            context = chromium.new_context()
            errors: list[str] = []
            page = context.new_page()
            page.goto(parent.origin + "/")
            with context.expect_page() as popup_info:
                page.click("#open")
            console = popup_info.value
            console.on("console", lambda msg: errors.append(f"{msg.type}: {msg.text}"))
            try:
                console.wait_for_function("() => document.body.dataset.state !== 'waiting'", timeout=20000)
            except Exception:
                console.screenshot(path=str(tmp_path / "console.png"))
                raise AssertionError(f"console page: {errors} {proxy.log()[-3000:]}") from None
            console.wait_for_function("() => document.body.dataset.state === 'connected'", timeout=20000)
            console.wait_for_function(
                "() => { const c = document.querySelector('#screen canvas');"
                " if (!c) return false; const p = c.getContext('2d').getImageData(5, 5, 1, 1).data;"
                " return p[0] === 0x2e && p[1] === 0x8b && p[2] === 0x57; }", timeout=20000)
            assert not [e for e in errors if "Content Security Policy" in e], errors
            context.close()
        finally:
            chromium.close()
    finally:
        parent.close()
    assert ticket not in proxy.log()


def test_console_page_ignores_messages_from_other_origins(browser, proxy_factory, engine_root, xvnc):
    proxy = proxy_factory("CONSOLE_PARENT_ORIGINS=https://engine.example\n")
    ticket = proxy.ticket("127.0.0.1", xvnc.port)
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(engine_root.proxy.cert)}"]
    chromium = browser.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    try:
        page = chromium.new_page()
        response = page.goto(f"https://localhost:{proxy.port}/console/")
        assert response.headers["x-frame-options"] == "DENY"
        page.evaluate("([t, p]) => window.postMessage({connectionTicket: t, password: p}, '*')",
                      [ticket, VNC_PASSWORD])
        page.wait_for_timeout(1000)
        assert page.evaluate("() => document.body.dataset.state") == "waiting"
    finally:
        chromium.close()
    assert not re.search(r"session \d+ start", proxy.log())
