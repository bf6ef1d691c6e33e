"""`ovirt-websocket-proxy [--root DIR] [--debug] [--background --pidfile F] [--systemd=notify] [start]`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import resource
import signal
import socket
import sys
from pathlib import Path

from ovcommon.errors import entry
from ovcommon.paths import Root
from wsproxy import config as configuration
from wsproxy.config import ConfigError
from wsproxy.server import Proxy, bind

log = logging.getLogger("wsproxy")
PROG = "ovirt-websocket-proxy"
HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
STATUS_INTERVAL = 2.0  # seconds between STATUS= updates (and at least this often, watchdog pings)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="oVirt's TLS WebSocket proxy for noVNC consoles")
    parser.add_argument("--root", type=Path, default=Path("/"), help="read every file below DIR (default /)")
    parser.add_argument("-d", "--debug", action="store_true", help="debug logging")
    parser.add_argument("--background", action="store_true", help="detach from the terminal")
    parser.add_argument("--pidfile", type=Path, help="write the daemon's process id here")
    parser.add_argument("--systemd", choices=["notify"], help="tell systemd when ready (Type=notify)")
    parser.add_argument("--redirect-output", action="store_true", help="accepted for oVirt compatibility")
    parser.add_argument("action", nargs="?", choices=["start"], default="start")
    return parser.parse_args(argv)


def sd_notify(message: str) -> None:
    """Send a state line to systemd's NOTIFY_SOCKET, if there is one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)


def setup_logging(debug: bool, background: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if background and Path("/dev/log").exists():
        handler: logging.Handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter(f"{PROG}[%(process)d]: %(levelname)s %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]


def daemonize(pidfile: Path | None) -> None:
    """Classic double fork; the grandchild writes the pidfile."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if pidfile is not None:
        write_pidfile(pidfile)


def write_pidfile(pidfile: Path) -> None:
    """Atomically, so a reader never sees it empty."""
    partial = pidfile.with_name(f".{pidfile.name}.{os.getpid()}")
    partial.write_text(f"{os.getpid()}\n")
    os.replace(partial, pidfile)


def raise_file_limit() -> None:
    """Two descriptors per session: lift the soft limit to the hard one (systemd sets 65535)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except OSError as exc:  # the unit's system-call filter refuses it: keep the soft limit
            log.warning("cannot raise the open file limit from %d: %s", soft, exc)


def watchdog_interval() -> float | None:
    """How often to tell systemd we are alive: half its WatchdogSec=, when it watches this process."""
    usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def status_line(proxy: Proxy) -> str:
    """What `systemctl status` shows next to "Status:"."""
    count = len(proxy.sessions)
    return f"Listening on port {proxy.port}; {count} open session{'' if count == 1 else 's'}"


def heartbeat(loop: asyncio.AbstractEventLoop, proxy: Proxy, interval: float, watchdog: bool,
              last_status: str = "") -> None:
    """Run by the event loop itself, so a hung loop stops the pings and systemd restarts the proxy."""
    status = status_line(proxy)
    lines = (["WATCHDOG=1"] if watchdog else []) + ([f"STATUS={status}"] if status != last_status else [])
    if lines:
        sd_notify("\n".join(lines))
    loop.call_later(interval, heartbeat, loop, proxy, interval, watchdog, status)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (unless WSPROXY_LOOP=asyncio), else asyncio's own loop."""
    if os.environ.get("WSPROXY_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


async def serve(proxy: Proxy, notify: bool) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def reload() -> None:
        if notify:
            sd_notify("RELOADING=1")
        proxy.reload()
        if notify:
            sd_notify("READY=1")

    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)  # deliver what arrived during start-up
    proxy.start()
    if notify:
        status = status_line(proxy)
        sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS={status}")
        interval = watchdog_interval()
        loop.call_later(0, heartbeat, loop, proxy, min(interval or STATUS_INTERVAL, STATUS_INTERVAL),
                        interval is not None, status)
    await stopping.wait()
    if notify:
        sd_notify("STOPPING=1")
    await proxy.stop()


@entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The port is bound before the loop handles signals: hold them until it does, so an early
    # SIGTERM still closes cleanly (and removes the pidfile).
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    setup_logging(args.debug, False)
    raise_file_limit()
    root = Root(args.root)
    try:
        if args.pidfile is not None and not os.access(args.pidfile.parent, os.W_OK):
            raise ConfigError("--pidfile", f"cannot write in {args.pidfile.parent}")
        config = configuration.load(root)
        for warning in config.warnings:
            log.warning("%s", warning)
        listeners = bind(config.host, config.port)
        proxy = Proxy(config, root, listeners)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.background:
        daemonize(args.pidfile)
        setup_logging(args.debug, True)
    elif args.pidfile is not None:
        write_pidfile(args.pidfile)
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(proxy, args.systemd == "notify"))
    finally:
        loop.close()
        if args.pidfile is not None:
            args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
