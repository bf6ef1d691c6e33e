"""The quick start as a new user runs it: `scripts/demo` in a fresh copy of the checkout, the printed
launcher opened in Debian's Chromium, Console clicked twice, each window showing the VNC desktop's
colour through noVNC and the proxy, and a pop-up blocker's case; `scripts/demo stop` leaves no process behind.

The copy gets its own `.venv`; to keep it fast it sees the test run's installed dependencies (a `.pth`
file) and pip installs the copy itself with `PIP_NO_DEPS=1`. `UPDATE_SCREENSHOT=1` writes the connected
console's screenshot to `docs/console.png`.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.proxy.conftest import free_port
from tests.integration.proxy.test_browser import CHROMIUM, CHROMIUM_ARGS, NOVNC, spki_pin

pytestmark = pytest.mark.integration
CHECKOUT = Path(__file__).resolve().parents[2]
SKIP_IN_COPY = shutil.ignore_patterns(".venv", ".git", "demo-root", "__pycache__", "*.egg-info", "build",
                                      ".pytest_cache", ".ruff_cache")
CANVAS_IS_GREEN = ("() => { const c = document.querySelector('#screen canvas'); if (!c) return false;"
                   " const p = c.getContext('2d').getImageData(5, 5, 1, 1).data;"
                   " return p[0] === 0x2e && p[1] === 0x8b && p[2] === 0x57; }")


def programs(lines: list[str]) -> list[str]:
    """Those lines but a forked child's (the proxy's workers): its parent has the same command line."""
    by_pid = {line.split(":", 1)[0]: line.split(": ", 1)[1] for line in lines}
    def forked(pid: str) -> bool:
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        return by_pid.get(parent) == by_pid[pid]
    return [line for line in lines if not forked(line.split(":", 1)[0])]


def command_lines(containing: str) -> list[str]:
    """Every other process's command line that contains the text."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and containing in argv and int(proc.name) != os.getpid():
            found.append(f"{proc.name}: {argv.replace(chr(0), ' ')}")
    return found


@pytest.fixture
def checkout_copy(tmp_path: Path) -> Path:
    """The checkout as a new user has it, with a .venv of its own."""
    if not Path(CHROMIUM).exists() or shutil.which("Xvnc") is None:
        pytest.skip("Debian chromium and Xvnc are needed")
    if not (NOVNC / "core" / "rfb.js").exists():
        pytest.skip("noVNC is not installed (scripts/setup.d/50-proxy.sh)")
    copy = tmp_path / "checkout"
    shutil.copytree(CHECKOUT, copy, ignore=SKIP_IN_COPY)
    subprocess.run([sys.executable, "-m", "venv", str(copy / ".venv")], check=True, timeout=120)
    site = next((copy / ".venv/lib").glob("python3*/site-packages"))
    (site / "test-run-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return copy


@pytest.fixture
def demo(checkout_copy: Path, tmp_path: Path) -> Iterator:
    root = tmp_path / "demo-root"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(checkout_copy / "scripts/demo"), *args, "--root", str(root)],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PIP_NO_DEPS": "1"}, cwd=checkout_copy)
    run.root = root  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        run("stop")


def test_demo_opens_two_consoles_showing_the_desktop_and_stop_ends_everything(demo, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    started = demo("start", "--proxy-port", str(free_port()), "--launcher-port", "0")
    assert started.returncode == 0, started.stdout + started.stderr
    match = re.search(r"^Console launcher: (https://localhost:(\d+)/)$", started.stdout, re.M)
    assert match, started.stdout
    assert "scripts/demo stop" in started.stdout
    again = demo("start")
    assert again.returncode == 1
    assert again.stderr == (f"scripts/demo: the demo below {demo.root} is running: "
                            f"scripts/demo stop --root {demo.root}\n")
    url, root = match.group(1), demo.root
    assert (root / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/20-demo.conf").read_text().endswith(
        f"CONSOLE_PARENT_ORIGINS=https://localhost:{match.group(2)}\n")

    # Trust exactly the launcher's (engine) and the proxy's keys, as a browser that imported the CA would.
    pins = ",".join(spki_pin(x509.load_pem_x509_certificate((root / f"etc/pki/ovirt-engine/certs/{name}").read_bytes()))
                    for name in ("engine.cer", "websocket-proxy.cer"))
    tickets = []
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pins}"])
        try:
            context = chromium.new_context(viewport={"width": 1100, "height": 860})
            page = context.new_page()
            page.goto(url)
            consoles = []
            for _ in range(2):
                with context.expect_page() as popup, page.expect_response("**/ticket/demo") as response:
                    page.click("tr[data-vm='demo'] button")
                tickets.append(response.value.json()["connectionTicket"])
                console = popup.value
                console.wait_for_function("() => document.body.dataset.state === 'connected'", timeout=30000)
                console.wait_for_function(CANVAS_IS_GREEN, timeout=20000)
                consoles.append(console)
            assert all(c.evaluate("() => document.body.dataset.state") == "connected" for c in consoles)
            consoles[0].screenshot(path=str(tmp_path / "console.png"))
            if os.environ.get("UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(tmp_path / "console.png", CHECKOUT / "docs/console.png")

            # Behind a pop-up blocker (window.open gives null), the row says so and its link opens the console.
            blocked = context.new_page()
            blocked.add_init_script("window.open = () => null")
            blocked.goto(url)
            blocked.click("tr[data-vm='demo'] button")
            message = blocked.locator("tr[data-vm='demo'] .message")
            message.wait_for(state="visible", timeout=10000)
            assert message.inner_text() == ("The browser blocked the console window. Allow pop-ups for this page, "
                                            "or open the console.")
            with context.expect_page() as popup:
                blocked.click("tr[data-vm='demo'] .message a")
            popup.value.wait_for_function("() => document.body.dataset.state === 'connected'", timeout=30000)
            context.close()
        finally:
            chromium.close()
    assert tickets[0] != tickets[1]
    logs = "".join(p.read_text(errors="replace") for p in (root / "var/log/demo").glob("*.log"))
    assert len(re.findall(r"session \d+ start", logs)) == 3, logs
    password = (root / "etc/ovirt-engine/vnc/demo.pass").read_text().strip()
    for secret in (password, *tickets):
        assert secret not in logs and secret not in started.stdout
        assert command_lines(secret) == []

    assert len(programs(command_lines(str(root)))) == 3  # Xvnc, the proxy (its workers aside) and the launcher
    stopped = demo("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "Stopped: proxy, launcher, xvnc\n"
    assert command_lines(str(root)) == []
    assert not (root / "run/demo.json").exists()
