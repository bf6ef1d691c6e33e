"""`ovirt-websocket-proxy [--root DIR] [--debug] [--background --pidfile F] [--systemd=notify] [start]`.

Signals: SIGHUP reloads, SIGTERM stops, SIGUSR2 hands over to the installed version (README).
"""
from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import resource
import signal
import sys
from pathlib import Path

from ovcommon.errors import entry
from ovcommon.paths import Root
from wsproxy import config as configuration
from wsproxy.config import ConfigError
from wsproxy.supervisor import HANDLED_SIGNALS, State, Supervisor, write_pidfile

log = logging.getLogger("wsproxy")
PROG = "ovirt-websocket-proxy"


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


def setup_logging(debug: bool, background: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if background and Path("/dev/log").exists():
        handler: logging.Handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter(f"{PROG}[%(process)d]: %(levelname)s %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))
    root.handlers[:] = [handler]


def daemonize() -> None:
    """Classic double fork; the grandchild goes on."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def raise_file_limit() -> None:
    """Two descriptors per session: lift the soft limit to the hard one (systemd sets 65535)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except OSError as exc:  # the unit's system-call filter refuses it: keep the soft limit
            log.warning("cannot raise the open file limit from %d: %s", soft, exc)


@entry(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # The port is bound before the supervisor handles signals: hold them until it does, so an early
    # SIGTERM still closes cleanly (and removes the pidfile).
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    state = State.inherited()  # set when a predecessor hands over to this process
    setup_logging(args.debug, args.background and state is not None)
    raise_file_limit()
    root = Root(args.root)
    try:
        if args.pidfile is not None and not os.access(args.pidfile.parent, os.W_OK):
            raise ConfigError("--pidfile", f"cannot write in {args.pidfile.parent}")
        config = configuration.load(root)
        for warning in config.warnings:
            log.warning("%s", warning)
        state = state or State.fresh(config)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    fresh = state.handover is None
    if args.background and fresh:
        daemonize()
        setup_logging(args.debug, True)
    if args.pidfile is not None and fresh:
        write_pidfile(args.pidfile)
    return Supervisor(config, root, state, argv, args.systemd == "notify", args.pidfile).run()


if __name__ == "__main__":
    sys.exit(main())
