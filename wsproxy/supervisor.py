"""The proxy's processes: one supervisor holding the listening sockets, WORKERS forked workers serving them.

The supervisor restarts a worker that dies, forwards SIGHUP, answers systemd (READY=1 once every worker
listens, STATUS=, WATCHDOG=1) and, on SIGUSR2, hands over to a successor: it starts the installed
version with the listening sockets and the one-use ticket directory, waits until that one's workers
listen, tells systemd the new main PID, then lets its own workers drain (README, "Upgrades that drop no
console"). The listening sockets are never closed in between, so no connection is refused.
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ovcommon import VERSION
from ovcommon.paths import Root
from wsproxy import board as counters
from wsproxy import config as configuration
from wsproxy.board import Board
from wsproxy.config import ConfigError, ProxyConfig
from wsproxy.server import Proxy, bind

log = logging.getLogger("wsproxy")
HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR2, signal.SIGCHLD, signal.SIGQUIT}
STATUS_INTERVAL = 2.0  # seconds between STATUS= updates (and at least this often, watchdog pings)
BEAT_INTERVAL = 1.0  # a worker tells the supervisor it is alive this often, from its event loop
HUNG_AFTER = 30.0  # a worker silent this long is killed and replaced
SUCCESSOR_TIMEOUT = 30.0  # a successor not listening by then is stopped; this generation keeps serving
STOP_GRACE = 5.0  # seconds workers get to close their sessions on SIGTERM
RESPAWN_DELAY = 1.0  # a worker that died within this of its start is restarted after this long
# What a hand-over passes to the successor's environment.
ENV_LISTEN_FDS, ENV_HANDOVER_FD = "WSPROXY_LISTEN_FDS", "WSPROXY_HANDOVER_FD"
ENV_STATE_DIR, ENV_STATE_OWNED = "WSPROXY_STATE_DIR", "WSPROXY_STATE_OWNED"


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


def watchdog_interval() -> float | None:
    """How often to tell systemd we are alive: half its WatchdogSec=, when it watches this process
    (a successor was started without WATCHDOG_PID: it is about to be the main process)."""
    usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (unless WSPROXY_LOOP=asyncio), else asyncio's own loop."""
    if os.environ.get("WSPROXY_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


@dataclass
class State:
    """What a generation inherits: listening sockets, the used-ticket directory, the hand-over channel."""

    listeners: list[socket.socket]
    state_dir: Path
    owns_state_dir: bool  # remove it when the proxy stops for good
    handover: socket.socket | None = None  # to the predecessor, until it lets this one be main

    @classmethod
    def inherited(cls) -> State | None:
        """The state a predecessor passed (then the environment forgets it), or None on a fresh start."""
        fds = os.environ.pop(ENV_LISTEN_FDS, "")
        if not fds:
            return None
        listeners = [socket.socket(fileno=int(fd)) for fd in fds.split(",")]
        for sock in listeners:
            sock.setblocking(False)
        handover = socket.socket(fileno=int(os.environ.pop(ENV_HANDOVER_FD)))
        return cls(listeners, Path(os.environ.pop(ENV_STATE_DIR)), os.environ.pop(ENV_STATE_OWNED, "") == "1",
                   handover)

    @classmethod
    def fresh(cls, config: ProxyConfig) -> State:
        """Bind the port; the ticket directory is systemd's RuntimeDirectory, else a private one."""
        listeners = bind(config.host, config.port)
        runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        if runtime:
            directory = Path(runtime) / "used-tickets"
            directory.mkdir(mode=0o700, exist_ok=True)
            return cls(listeners, directory, False)
        return cls(listeners, Path(tempfile.mkdtemp(prefix="ovirt-websocket-proxy-")), True)


@dataclass
class Worker:
    pid: int
    row: int
    beats: int  # the read end of its pipe
    started: float
    ready: bool = False
    draining: bool = False
    last_beat: float = field(default_factory=time.monotonic)


def _die_with_parent() -> None:
    """A worker ends when its supervisor does, even by SIGKILL."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    """The main process. `run()` returns the exit status."""

    def __init__(self, config: ProxyConfig, root: Root, state: State, argv: list[str], notify: bool,
                 pidfile: Path | None) -> None:
        self.config, self.root, self.state, self.argv = config, root, state, argv
        self.notify, self.pidfile = notify, pidfile
        self.board = Board(config.workers * 3)  # room for a generation draining after a port change
        self.workers: dict[int, Worker] = {}
        self.main = state.handover is None  # a successor is main once its predecessor says so
        self.stopping = False
        self._kill_at = 0.0  # when stopping: workers still alive then are killed
        self._ready_said = False  # every worker listens (told systemd, or the predecessor)
        self._announced = False  # told systemd READY=1: from then on STATUS= and WATCHDOG=1
        self.successor: tuple[int, socket.socket, float] | None = None  # pid, channel, deadline
        self.draining = False  # handed over: exit once the workers are gone
        self._respawn: list[tuple[float, int]] = []  # (when, row)
        self._signals: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._status = ""
        self._next_status = 0.0
        interval = watchdog_interval()
        self._watchdog = interval is not None
        self._interval = min(interval or STATUS_INTERVAL, STATUS_INTERVAL)

    # --- the loop ---
    def run(self) -> int:
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake = (wake_read, wake_write)
        signal.set_wakeup_fd(wake_write)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._signals_arrived)
        self._selector.register(wake_read, selectors.EVENT_READ, None)
        if self.state.handover is not None:
            self._selector.register(self.state.handover, selectors.EVENT_READ, "predecessor")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        for row in range(self.config.workers):
            self._spawn(row)
        port = self.state.listeners[0].getsockname()[1]
        log.info("version %s: %d worker%s on port %d", VERSION, self.config.workers,
                 "" if self.config.workers == 1 else "s", port)
        while True:
            timeout = max(0.0, min([1.0, *self._deadlines()]))
            for key, _ in self._selector.select(timeout):
                self._readable(key)
            self._handle_signals()
            self._reap()
            self._tick()
            if self.stopping or self.draining:
                if not self.workers:
                    return self._exit()

    def _signals_arrived(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _deadlines(self) -> list[float]:
        now = time.monotonic()
        out = [when - now for when, _ in self._respawn]
        if self._announced:
            out.append(self._next_status - now)
        if self.successor is not None:
            out.append(self.successor[2] - now)
        return out

    def _readable(self, key: selectors.SelectorKey) -> None:
        if key.data is None:  # the signal wake-up pipe
            with contextlib.suppress(BlockingIOError):
                os.read(key.fd, 512)
        elif key.data == "predecessor":
            self._predecessor_says()
        elif key.data == "successor":
            self._successor_says()
        else:
            self._worker_says(key.data)

    def _worker_says(self, worker: Worker) -> None:
        try:
            data = os.read(worker.beats, 64)
        except OSError:
            data = b""
        if not data:  # the worker is gone; _reap() hears why
            self._selector.unregister(worker.beats)
            os.close(worker.beats)
            worker.beats = -1
            return
        worker.last_beat = time.monotonic()
        if b"R" in data and not worker.ready:
            worker.ready = True
            if all(w.ready for w in self.workers.values() if not w.draining):
                self._all_listening()

    def _all_listening(self) -> None:
        """Every worker listens: tell systemd (or the predecessor) once."""
        if self._ready_said:
            return
        self._ready_said = True
        if self.main:
            self._become_ready()
        else:
            assert self.state.handover is not None
            with contextlib.suppress(OSError):
                self.state.handover.sendall(b"R")

    def _become_ready(self) -> None:
        if self.notify:
            self._status = self.status_line()
            sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS={self._status}")
            self._announced = True
            self._next_status = 0.0

    def _tick(self) -> None:
        now = time.monotonic()
        for when, row in list(self._respawn):
            if when <= now and not (self.stopping or self.draining):
                self._respawn.remove((when, row))
                self._spawn(row)
        for worker in self.workers.values():
            if now - worker.last_beat > HUNG_AFTER and not worker.draining:
                log.error("worker %d answered nothing for %.0fs: killing it", worker.pid, HUNG_AFTER)
                _kill(worker.pid, signal.SIGKILL)
                worker.last_beat = now
        if self.stopping and now > self._kill_at:
            for worker in self.workers.values():
                _kill(worker.pid, signal.SIGKILL)
        if self.successor is not None and now > self.successor[2]:
            log.error("hand-over failed: the new process %d did not listen within %.0fs; this one keeps serving",
                      self.successor[0], SUCCESSOR_TIMEOUT)
            self._drop_successor(stop=True)
        if self._announced and self.main and not self.draining and now >= self._next_status:
            status = self.status_line()
            lines = ["WATCHDOG=1"] if self._watchdog else []
            if status != self._status:
                lines.append(f"STATUS={status}")
            if lines:
                sd_notify("\n".join(lines))
            self._status = status
            self._next_status = now + self._interval

    def status_line(self) -> str:
        """What `systemctl status` shows next to "Status:"."""
        count, workers = self.board.total(counters.OPEN), self.config.workers
        port = self.state.listeners[0].getsockname()[1] if self.state.listeners[0].fileno() >= 0 else 0
        return (f"Listening on port {port}; {count} open session{'' if count == 1 else 's'}; "
                f"version {VERSION}; {workers} worker{'' if workers == 1 else 's'}")

    # --- signals ---
    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGCHLD:
                continue  # _reap() runs after every wake-up
            if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                self._stop(signum)
            elif signum == signal.SIGHUP:
                self._reload()
            elif signum == signal.SIGUSR2:
                self._hand_over()

    def _stop(self, signum: int) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.notify and self.main:
            sd_notify("STOPPING=1")
        if self.successor is not None:
            self._drop_successor(stop=True)
        for worker in self.workers.values():
            _kill(worker.pid, signal.SIGTERM)
        self._kill_at = time.monotonic() + STOP_GRACE

    def _reload(self) -> None:
        """SIGHUP: check the configuration here once, then every worker re-reads it; a changed address
        gets new workers on the new port while the old ones drain."""
        if not self.main or self.draining or self.stopping:
            return
        if self.notify:
            sd_notify("RELOADING=1")
        try:
            new = configuration.load(self.root)
            for warning in new.warnings:
                log.warning("%s", warning)
            if (new.host, new.port) != (self.config.host, self.config.port):
                self._move(new)
            else:
                for worker in self.workers.values():
                    if not worker.draining:
                        _kill(worker.pid, signal.SIGHUP)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
        if self.notify:
            sd_notify("READY=1")

    def _move(self, new: ProxyConfig) -> None:
        listeners = bind(new.host, new.port)
        old = [w for w in self.workers.values() if not w.draining]
        for sock in self.state.listeners:
            sock.close()
        self.state.listeners, self.config = listeners, new
        used = {w.row for w in self.workers.values()}
        free = [row for row in range(self.board.rows) if row not in used]
        for row in free[:new.workers]:
            self._spawn(row)
        for worker in old:
            worker.draining = True
            _kill(worker.pid, signal.SIGQUIT)
        log.info("configuration reloaded: now listening on port %d; %d workers of the old port drain their sessions",
                 listeners[0].getsockname()[1], len(old))

    # --- workers ---
    def _spawn(self, row: int) -> None:
        beats_read, beats_write = os.pipe2(os.O_CLOEXEC)
        self.board.row(row).vacate()
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)  # the worker unblocks them in its loop
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(beats_read)
                code = self._worker(row, beats_write)
            except BaseException:  # noqa: B036 - a worker never returns into the supervisor's code
                log.exception("worker failed")
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        os.close(beats_write)
        os.set_blocking(beats_read, False)
        worker = Worker(pid, row, beats_read, time.monotonic())
        self.workers[pid] = worker
        self._selector.register(beats_read, selectors.EVENT_READ, worker)

    def _worker(self, row: int, beats: int) -> int:
        _die_with_parent()
        signal.set_wakeup_fd(-1)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        self._selector.close()
        for fd in self._wake:
            os.close(fd)
        for worker in self.workers.values():
            if worker.beats >= 0:
                os.close(worker.beats)
        for channel in (self.state.handover, self.successor[1] if self.successor else None):
            if channel is not None:
                channel.close()
        os.set_blocking(beats, False)
        main_pid = os.getppid()
        proxy = Proxy(self.config, self.root, self.state.listeners, self.board, row, self.state.state_dir, main_pid)
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve_worker(proxy, beats))
        finally:
            loop.close()
        return 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.successor is not None and pid == self.successor[0]:
                log.error("hand-over failed: the new process %d %s before it listened; this one keeps serving",
                          pid, _how(status))
                self._drop_successor(stop=False)
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if worker.beats >= 0:
                self._selector.unregister(worker.beats)
                os.close(worker.beats)
            self.board.row(worker.row).vacate()
            if self.stopping or worker.draining or self.draining:
                continue
            log.error("worker %d %s: starting another", pid, _how(status))
            early = time.monotonic() - worker.started < RESPAWN_DELAY
            self._respawn.append((time.monotonic() + (RESPAWN_DELAY if early else 0.0), worker.row))

    def _exit(self) -> int:
        if self.stopping and self.main:
            if self.state.owns_state_dir:
                shutil.rmtree(self.state.state_dir, ignore_errors=True)
            if self.pidfile is not None:
                self.pidfile.unlink(missing_ok=True)
            log.info("stopped")
        elif self.draining:
            log.info("hand-over: old process %d drained; exiting", os.getpid())
        return 0

    # --- hand-over ---
    def _hand_over(self) -> None:
        """SIGUSR2: start the installed version with our sockets; it becomes main once it listens."""
        if not self.main or self.draining or self.stopping or self.successor is not None:
            log.warning("hand-over asked while %s: ignored", "one is in progress" if self.successor else "not main")
            return
        mine, theirs = socket.socketpair()
        env = {**os.environ, ENV_LISTEN_FDS: ",".join(str(s.fileno()) for s in self.state.listeners),
               ENV_HANDOVER_FD: str(theirs.fileno()), ENV_STATE_DIR: str(self.state.state_dir),
               ENV_STATE_OWNED: "1" if self.state.owns_state_dir else "0"}
        env.pop("WATCHDOG_PID", None)
        command = [sys.executable, "-m", "wsproxy", *self.argv]
        pid = os.fork()
        if pid == 0:
            try:
                for sock in (*self.state.listeners, theirs):
                    os.set_inheritable(sock.fileno(), True)
                signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)  # until it handles them
                for signum in HANDLED_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                os.execve(sys.executable, command, env)
            finally:
                os._exit(127)
        theirs.close()
        mine.setblocking(False)
        self.successor = (pid, mine, time.monotonic() + SUCCESSOR_TIMEOUT)
        self._selector.register(mine, selectors.EVENT_READ, "successor")
        log.info("hand-over: started %s (pid %d)", " ".join(command[:3]), pid)

    def _successor_says(self) -> None:
        assert self.successor is not None
        pid, channel, _ = self.successor
        try:
            data = channel.recv(16)
        except OSError:
            data = b""
        if b"R" not in data:
            if not data:  # it closed the channel: its exit is reaped and logged
                self._selector.unregister(channel)
            return
        if self.notify:
            sd_notify(f"MAINPID={pid}")
        with contextlib.suppress(OSError):
            channel.sendall(b"M")
        self._selector.unregister(channel)
        channel.close()
        self.successor = None
        self.main, self.draining = False, True
        open_sessions = self.board.total(counters.OPEN)
        for worker in self.workers.values():
            worker.draining = True
            _kill(worker.pid, signal.SIGQUIT)
        for sock in self.state.listeners:
            sock.close()
        log.info("hand-over: successor %d is listening; draining %d open sessions", pid, open_sessions)

    def _drop_successor(self, stop: bool) -> None:
        assert self.successor is not None
        pid, channel, _ = self.successor
        self.successor = None
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(channel)
        channel.close()
        if stop:
            _kill(pid, signal.SIGTERM)

    def _predecessor_says(self) -> None:
        """The predecessor answers our R with M (or is gone): this process is main from now on."""
        assert self.state.handover is not None
        try:
            data = self.state.handover.recv(16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and b"M" not in data:
            return
        self._selector.unregister(self.state.handover)
        self.state.handover.close()
        self.state.handover = None
        if self.pidfile is not None:  # (a fresh start wrote it before forking its workers)
            write_pidfile(self.pidfile)
        self.main = True  # (if the predecessor died before we listened, we say ready when we do)
        if self._ready_said:
            self._become_ready()
            log.info("hand-over: this process (%d) is the main one now", os.getpid())


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def write_pidfile(pidfile: Path) -> None:
    """Atomically, so a reader never sees it empty."""
    partial = pidfile.with_name(f".{pidfile.name}.{os.getpid()}")
    partial.write_text(f"{os.getpid()}\n")
    os.replace(partial, pidfile)


async def serve_worker(proxy: Proxy, beats: int) -> None:
    """A worker's life: serve until SIGTERM (close every session) or SIGQUIT (drain, then close)."""
    loop = asyncio.get_running_loop()
    ending: asyncio.Future[str] = loop.create_future()

    def end(how: str) -> None:
        if not ending.done():
            ending.set_result(how)

    loop.add_signal_handler(signal.SIGHUP, proxy.reload)
    loop.add_signal_handler(signal.SIGTERM, end, "stop")
    loop.add_signal_handler(signal.SIGINT, end, "stop")
    loop.add_signal_handler(signal.SIGQUIT, end, "drain")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
    proxy.start()

    def beat(message: bytes = b".") -> None:
        try:
            os.write(beats, message)
        except BlockingIOError:  # the supervisor is stopped (SIGSTOP): it misses a beat, no more
            pass
        except OSError:  # the supervisor is gone
            end("stop")
            return
        loop.call_later(BEAT_INTERVAL, beat)

    beat(b"R")
    if await ending == "drain":
        drain = loop.create_task(proxy.drain())
        ending = loop.create_future()
        done, _ = await asyncio.wait({drain, ending}, return_when=asyncio.FIRST_COMPLETED)
        if drain in done:
            return drain.result()
        drain.cancel()
    await proxy.stop()
