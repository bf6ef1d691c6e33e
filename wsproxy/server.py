"""The proxy: listeners, the pre-upgrade checks (Origin, ticket, target), sessions, metrics, reload."""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import logging
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from websockets.datastructures import MultipleValuesError
from websockets.exceptions import HeaderLineTooLong, NegotiationError, RequestLineTooLong, TooManyHeaders
from websockets.http11 import Request
from websockets.server import ServerProtocol

from ovcommon import VERSION
from ovcommon.paths import Root
from ovcommon.ticket import TicketError, Verifier
from wsproxy import board as counters
from wsproxy import config as configuration
from wsproxy import vencrypt, web
from wsproxy.board import Board
from wsproxy.config import ConfigError, ProxyConfig
from wsproxy.netio import connect, recv_some, send_all, tls_handshake, wait_fd
from wsproxy.relay import Session
from wsproxy.replay import ReplayCache

log = logging.getLogger("wsproxy")
CONNECT_TIMEOUT = 10.0
MAX_REQUEST = 65536
ACCEPT_PAUSE = 1.0  # seconds without accepting after the process ran out of descriptors
ACCEPT_LOG_INTERVAL = 60.0  # at most one "out of descriptors" line per this many seconds
_NO_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ws_log = logging.getLogger("wsproxy.websockets")
_ws_log.setLevel(logging.WARNING)  # its debug lines would print the request path, i.e. the ticket


class Refused(Exception):
    """A request answered with an HTTP error before any upgrade; `reason` is the metrics label."""

    def __init__(self, status: int, reason: str, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or reason)
        self.status, self.reason, self.detail, self.headers = status, reason, detail, headers


def loggable(text: str, limit: int = 200) -> str:
    """Attacker-chosen text for one log line: control characters escaped, cut to `limit` characters."""
    cut = text[:limit]
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return escaped + (f"... ({len(text)} characters)" if len(text) > limit else "")


def header(request: Request, name: str) -> str | None:
    """A header that may appear once (Host, Origin): a repeated one is a 400."""
    try:
        return request.headers.get(name)
    except MultipleValuesError:
        raise Refused(400, "bad-request", f"{name} header repeated") from None


def _unparsed(exc: BaseException) -> Refused:
    """The answer to a request websockets could not parse (it would close without one for some)."""
    if isinstance(exc, RequestLineTooLong):
        return Refused(414, "bad-request", "request line too long")
    if isinstance(exc, (HeaderLineTooLong, TooManyHeaders)):
        return Refused(431, "bad-request", str(exc))
    cause = exc.__cause__
    if isinstance(cause, NotImplementedError):
        return Refused(501, "bad-request", str(cause))
    return Refused(400, "bad-request", f"{exc}: {cause}" if cause else str(exc))


def _select_subprotocol(protocol: ServerProtocol, offered: Sequence[str]) -> str | None:
    for name in ("binary", "base64"):
        if name in offered:
            return name
    if not offered:
        return None  # served binary, as websockify does for clients that offer nothing
    raise NegotiationError("the client offers neither 'binary' nor 'base64'")


def origin_allowed(origin: str | None, host_header: str | None, allowed: tuple[str, ...], tls: bool) -> bool:
    """ALLOWED_ORIGINS, or by default: the Origin, when sent, names the host the client connected to."""
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if allowed:
        return "*" in allowed or origin in allowed
    try:
        parts = urlsplit(origin)
        host = urlsplit("//" + (host_header or "").strip().lower())
        origin_port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
        host_port = host.port or (443 if tls else 80)
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and parts.hostname == host.hostname and origin_port == host_port)


def _is_loopback(peer: str) -> bool:
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _listen_addresses(host: str | None, port: int) -> list[tuple[int, tuple]]:
    if host is None:
        if socket.has_ipv6:
            return [(socket.AF_INET6, ("::", port))]
        return [(socket.AF_INET, ("0.0.0.0", port))]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((family, addr[:2]) for family, _, _, _, addr in infos))


def bind(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for PROXY_HOST/PROXY_PORT (`*`: dual-stack any address)."""
    sockets: list[socket.socket] = []
    try:
        for family, address in _listen_addresses(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host is None else 1)
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
            port = port or sock.getsockname()[1]
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError("PROXY_PORT", f"cannot listen on {host or '*'}:{port}: {exc.strerror or exc}") from None
    return sockets


class Proxy:
    """What one worker serves, with its live configuration; counters go to its row of the shared board."""

    def __init__(self, config: ProxyConfig, root: Root, listeners: list[socket.socket], board: Board,
                 row: int, replay_dir: Path, main_pid: int) -> None:
        self.root = root
        self.listeners = listeners
        self.replay = ReplayCache(replay_dir)
        self.sessions: set[Session] = set()
        self.board, self.main_pid = board, main_pid
        self._row = board.row(row)
        self._ids = itertools.count(row + 1, board.rows)  # session numbers unique across workers
        self._tasks: set[asyncio.Task] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handshakes = 0
        self._accepting = False
        self._paused_until = 0.0  # monotonic time before which accepting stays paused (out of descriptors)
        self._resume_timer: asyncio.TimerHandle | None = None
        self._no_fd_logged = -ACCEPT_LOG_INTERVAL
        self._no_fd_count = 0
        self.apply(config)

    @property
    def port(self) -> int:
        return self.listeners[0].getsockname()[1]

    @property
    def handshake_limit(self) -> int:
        """This worker's share of MAX_HANDSHAKES (a bound on the whole proxy's memory)."""
        return -(-self.config.max_handshakes // self.config.workers)

    # This worker's byte counts (`+=` by the sessions), kept in its own row of the board.
    @property
    def bytes_to_target(self) -> int:
        return self._row.get(counters.TO_TARGET)

    @bytes_to_target.setter
    def bytes_to_target(self, value: int) -> None:
        self._row.set(counters.TO_TARGET, value)

    @property
    def bytes_to_client(self) -> int:
        return self._row.get(counters.TO_CLIENT)

    @bytes_to_client.setter
    def bytes_to_client(self, value: int) -> None:
        self._row.set(counters.TO_CLIENT, value)

    def apply(self, config: ProxyConfig) -> None:
        """Switch to `config`: all of it, or (ConfigError) none of it."""
        ctx = config.ssl_context()
        if ctx is not None:
            ctx.num_tickets = 0  # no session tickets: less per-connection state
        target_tls = config.vnc_tls_context()
        verifier = Verifier(config.engine_cert, config.clock_skew)
        self.config, self.ssl_ctx, self.target_tls, self.verifier = config, ctx, target_tls, verifier

    # --- lifecycle ---
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._accepting = False
        self._resume_accepting()
        if self._sweeper is None:
            self._schedule_sweep()
        where = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in self.listeners)
        log.info("listening on %s (%s)", where, "TLS" if self.ssl_ctx else "plain")

    def _stop_listening(self, listeners: list[socket.socket]) -> None:
        for sock in listeners:
            if self._loop is not None and sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._accepting = False

    def _pause_accepting(self) -> None:
        if self._accepting and self._loop is not None:
            for sock in self.listeners:
                self._loop.remove_reader(sock.fileno())
            self._accepting = False

    def _resume_accepting(self) -> None:
        """Listen again, unless out of descriptors a moment ago or MAX_HANDSHAKES are in progress."""
        assert self._loop is not None
        if self._accepting or self._handshakes >= self.handshake_limit:
            return
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            if self._resume_timer is None:
                self._resume_timer = self._loop.call_later(wait, self._resume_after_pause)
            return
        for sock in self.listeners:
            self._loop.add_reader(sock.fileno(), self._accept, sock)
        self._accepting = True

    def _resume_after_pause(self) -> None:
        self._resume_timer = None
        self._resume_accepting()

    def _out_of_descriptors(self, exc: OSError) -> None:
        """Stop accepting for ACCEPT_PAUSE (the listener would stay readable); one log line per interval."""
        self._no_fd_count += 1
        now = time.monotonic()
        if now - self._no_fd_logged >= ACCEPT_LOG_INTERVAL:
            log.error("accept failed: %s; pausing %.0fs at a time (%d times since the last message)",
                      exc.strerror or exc, ACCEPT_PAUSE, self._no_fd_count)
            self._no_fd_logged, self._no_fd_count = now, 0
        self._paused_until = now + ACCEPT_PAUSE
        self._pause_accepting()
        self._resume_accepting()

    async def stop(self, reason: str = "proxy shutting down") -> None:
        """Stop accepting, close every session with 1001 going away."""
        self._stop_listening(self.listeners)
        for timer in (self._sweeper, self._resume_timer):
            if timer is not None:
                timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for session in list(self.sessions):
            session.close(1001, reason)
        await asyncio.sleep(0.1)
        log.info("stopped")

    def reload(self) -> None:
        """SIGHUP: re-read config and certificates; sessions stay. The listening address is the
        supervisor's: when it changes, new workers take the new port and this one drains."""
        try:
            new = configuration.load(self.root)
            self.apply(new)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        log.info("configuration reloaded")

    async def drain(self) -> None:
        """Stop accepting (a successor serves the port now); keep the open sessions until they end or
        DRAIN_TIMEOUT passes, then close what is left with 1001."""
        self._stop_listening(self.listeners)
        deadline = time.monotonic() + self.config.drain_timeout
        log.info("draining %d open sessions (at most %.0fs)", len(self.sessions), self.config.drain_timeout)
        while (self.sessions or self._tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if self.sessions:
            log.info("drain time over: closing %d sessions", len(self.sessions))
        await self.stop("proxy upgraded")

    def _schedule_sweep(self) -> None:
        assert self._loop is not None
        self._sweeper = self._loop.call_later(5.0, self._sweep)

    def _sweep(self) -> None:
        self.replay.purge()
        timeout = self.config.idle_timeout
        if timeout:
            limit = time.monotonic() - timeout
            for session in [s for s in self.sessions if s.last_active < limit]:
                log.info("session %d idle for %.0fs", session.ident, timeout)
                session.close(1000, "idle timeout")
        self._schedule_sweep()

    def session_ended(self, session: Session) -> None:
        self.sessions.discard(session)
        self._row.set(counters.OPEN, len(self.sessions))

    # --- connections ---
    def _accept(self, listener: socket.socket) -> None:
        assert self._loop is not None
        for _ in range(64):
            if self._handshakes >= self.handshake_limit:
                self._pause_accepting()  # resumed when a handshake ends
                return
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _NO_RESOURCES:
                    self._out_of_descriptors(exc)
                else:
                    log.debug("accept failed: %s", exc)  # e.g. ECONNABORTED: that client is gone
                return
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                sock.close()
                continue
            peer = address[0].removeprefix("::ffff:") if "." in address[0] else address[0]
            self._handshakes += 1
            task = self._loop.create_task(self._handle(sock, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _handshake_ended(self) -> None:
        self._handshakes -= 1
        if not self._accepting and self._loop is not None and self.listeners[0].fileno() >= 0:
            self._resume_accepting()

    async def _handle(self, sock: socket.socket, peer: str) -> None:
        try:
            session = await self._handshake(sock, peer)
        finally:
            self._handshake_ended()
        if session is not None:
            session.start()

    async def _handshake(self, sock: socket.socket, peer: str) -> Session | None:
        """TLS, the request, the checks and the target: the session to start, or None when answered."""
        loop = asyncio.get_running_loop()
        config, ctx = self.config, self.ssl_ctx
        ident = next(self._ids)
        try:
            async with asyncio.timeout(config.handshake_timeout):
                sock = await self._secure(loop, sock, config, ctx)
                ws = ServerProtocol(subprotocols=["binary", "base64"], select_subprotocol=_select_subprotocol,
                                    max_size=config.max_frame_size, logger=_ws_log)
                request = await self._read_request(loop, sock, ws)
                if request is None:
                    sock.close()
                    return None
                answer = self._plain_http(request, peer, config)
                if answer is not None:
                    await send_all(loop, sock, answer)
                    sock.close()
                    return None
                return await self._open(loop, sock, ws, request, peer, config, ident)
        except Refused as refusal:
            await self._refuse(loop, sock, peer, refusal)
            return None
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            log.debug("connection %d from %s dropped during the handshake: %s", ident, peer, exc)
            sock.close()
            return None
        except asyncio.CancelledError:
            sock.close()
            raise
        except Exception as exc:  # a defect: still one line and an answer, never an unretrieved task exception
            log.debug("connection %d from %s: unexpected error", ident, peer, exc_info=True)
            await self._refuse(loop, sock, peer, Refused(500, "internal-error", f"{type(exc).__name__}: {exc}"))
            return None

    async def _refuse(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, peer: str,
                      refusal: Refused) -> None:
        """Count, log one line (attacker text capped), answer the HTTP error, close."""
        self._row.refused(refusal.reason)
        log.warning("refused %s (%s) from %s", refusal.reason, loggable(refusal.detail or str(refusal.status)), peer)
        try:
            await asyncio.wait_for(send_all(loop, sock, web.response(refusal.status, headers=refusal.headers)), 2)
        except (OSError, ssl.SSLError, TimeoutError):
            pass
        sock.close()

    async def _secure(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, config: ProxyConfig,
                      ctx: ssl.SSLContext | None) -> socket.socket:
        if ctx is None:
            return sock
        await wait_fd(loop, sock)
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise ConnectionError("closed before the first byte")
        if first != b"\x16":
            if config.ssl_only:
                raise Refused(403, "plain-http", "plain HTTP on a TLS-only port")
            return sock
        tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        await tls_handshake(loop, tls)
        return tls

    async def _read_request(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                            ws: ServerProtocol) -> Request | None:
        """The request head (None: closed before one); what does not parse is Refused with its status."""
        received = 0
        while received <= MAX_REQUEST:
            data = await recv_some(loop, sock)
            if not data:
                return None
            received += len(data)
            ws.receive_data(data)
            for event in ws.events_received():
                if isinstance(event, Request):
                    return event
            if ws.handshake_exc is not None:
                raise _unparsed(ws.handshake_exc)
        raise Refused(431, "bad-request", f"request head over {MAX_REQUEST} bytes")

    def _plain_http(self, request: Request, peer: str, config: ProxyConfig) -> bytes | None:
        """The answer to anything but a WebSocket upgrade (GET and HEAD only), or None for an upgrade."""
        if request.method not in ("GET", "HEAD"):
            raise Refused(405, "method", f"method {request.method}", {"Allow": "GET, HEAD"})
        answer = self._get(request, peer, config)
        if answer is not None and request.method == "HEAD":
            return answer[:answer.index(b"\r\n\r\n") + 4]
        return answer

    def _get(self, request: Request, peer: str, config: ProxyConfig) -> bytes | None:
        path = request.path
        if path == "/metrics" or path.startswith("/metrics?"):
            if config.metrics == "any" or (config.metrics == "loopback" and _is_loopback(peer)):
                return self.metrics()
            return web.response(404)
        if path.startswith("/console"):
            return web.console(path, config.console_parent_origins, config.novnc_dir)
        connection = ",".join(request.headers.get_all("Connection")).lower()
        if request.method != "GET" or "upgrade" not in connection:
            return web.response(404)
        if not header(request, "Host"):
            raise Refused(400, "bad-request", "WebSocket upgrade without a Host header")
        return None

    async def _open(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, ws: ServerProtocol,
                    request: Request, peer: str, config: ProxyConfig, ident: int) -> Session:
        """Every check before the upgrade, then the target connection, then the 101."""
        response = ws.accept(request)
        if response.status_code != 101:
            raise Refused(response.status_code, "bad-handshake", str(ws.handshake_exc or response.reason_phrase))
        if self.board.total(counters.OPEN) >= config.max_sessions:
            raise Refused(503, "busy", f"MAX_SESSIONS={config.max_sessions} reached")
        tls = isinstance(sock, ssl.SSLSocket)
        origin = header(request, "Origin")
        if not origin_allowed(origin, header(request, "Host"), config.allowed_origins, tls):
            raise Refused(403, "origin", f"Origin {origin!r} not allowed")
        try:
            ticket = self.verifier.verify(request.path[1:])
        except TicketError as exc:
            raise Refused(403, f"ticket-{exc.reason}", str(exc)) from None
        target = ticket.target
        try:
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise Refused(502, "target-unresolved", f"{target.host}: {exc}") from None
        allowed = [(family, address) for family, _, _, _, address in infos
                   if config.target_allowed(address[0], target.port)]
        if not allowed:
            raise Refused(403, "target-not-allowed", f"{target.host}:{target.port}")
        try:
            self.replay.use(ticket)
        except TicketError as exc:
            raise Refused(403, f"ticket-{exc.reason}", str(exc)) from None
        server = await self._connect(loop, allowed, target.host, target.port)
        prefix, swallow = b"", b""
        if target.ssl_target:
            try:
                negotiated = await vencrypt.negotiate(loop, server, self.target_tls, target.host)
            except ssl.SSLCertVerificationError as exc:
                server.close()
                reason = "target-tls-name" if vencrypt.is_name_failure(exc) else "target-tls-chain"
                raise Refused(502, reason, f"{target.host}:{target.port}: {exc.verify_message}") from None
            except (vencrypt.VeNCryptError, OSError, ssl.SSLError, ConnectionError) as exc:
                server.close()
                raise Refused(502, "target-vencrypt", str(exc)) from None
            server, prefix, swallow = negotiated.sock, negotiated.to_client, negotiated.from_client
        ws.send_response(response)
        label = f"{target.host}:{target.port}{' (VeNCrypt)' if target.ssl_target else ''}"
        session = Session(self, ident, peer, label, ws, sock, server, response.headers.get("Sec-WebSocket-Protocol"),
                          swallow, prefix)
        self.sessions.add(session)
        self._row.set(counters.OPEN, len(self.sessions))
        self._row.add(counters.TOTAL)
        log.info("session %d start: peer %s target %s subprotocol %s", ident, peer, label,
                 response.headers.get("Sec-WebSocket-Protocol", "none"))
        return session

    async def _connect(self, loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, tuple]],
                       host: str, port: int) -> socket.socket:
        error: Exception | None = None
        for family, address in addresses:
            try:
                return await asyncio.wait_for(connect(loop, family, address), CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                error = exc
        raise Refused(502, "target-unreachable", f"{host}:{port}: {error}")

    def metrics(self) -> bytes:
        """Totals over every worker of this generation."""
        board = self.board
        refused = {f'{{reason="{reason}"}}': float(n) for reason, n in sorted(board.refusals().items())}
        return web.metrics_text(
            {"wsproxy_sessions_open": ("Console sessions relaying now.", {"": float(board.total(counters.OPEN))}),
             "wsproxy_workers": ("Worker processes serving the port.", {"": float(self.config.workers)}),
             "wsproxy_build_info": ("The running version and its main process.",
                                    {f'{{version="{VERSION}",pid="{self.main_pid}"}}': 1.0})},
            {"wsproxy_sessions_total": ("Console sessions opened.", {"": float(board.total(counters.TOTAL))}),
             "wsproxy_refused_total": ("Requests refused before the upgrade, by reason.", refused or {"": 0.0}),
             "wsproxy_bytes_total": ("Bytes relayed, by direction.", {
                 '{direction="client_to_target"}': float(board.total(counters.TO_TARGET)),
                 '{direction="target_to_client"}': float(board.total(counters.TO_CLIENT))})})
