"""Lean socket I/O on the event loop: readiness callbacks on raw (TLS) sockets, no asyncio transports.

Why not asyncio's TLS transport: it keeps a 256 KiB read buffer per connection (plus two memory
BIOs), which alone breaks the 32 KiB-per-idle-session budget. A non-blocking `ssl.SSLSocket` driven
by `add_reader`/`add_writer` keeps only OpenSSL's state, and CPython sets SSL_MODE_RELEASE_BUFFERS so
an idle connection holds no record buffers. Works the same on asyncio's loop and on uvloop.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Protocol

HIGH_WATER = 512 * 1024  # MAX_SESSION_BUFFER's default; a channel resumes its feeders at an eighth of it
IOV_LIMIT = 64  # pieces one sendmsg takes; more are joined first
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
Bytes = bytes | bytearray | memoryview


class Handler(Protocol):
    def channel_error(self, channel: Channel, exc: Exception) -> None: ...
    def channel_backlog(self, channel: Channel, full: bool) -> None: ...


class Channel:
    """One connected socket: `on_readable` does the reading, writes queue when the socket is full.

    `on_readable` reads the socket itself (into a buffer it reuses); a would-block there ends the
    wake-up, another OSError goes to `channel_error`. Writes go out at once and are copied only
    when the socket would block. When the queue passes `high_water` the handler hears
    `channel_backlog(full=True)` and must stop reading every socket whose input feeds this queue;
    `full=False` comes at an eighth of it.
    """

    __slots__ = ("loop", "sock", "fd", "handler", "on_readable", "tls", "_out", "_out_size", "_pinned",
                 "reading", "_writer", "_backlog", "closed", "_close_when_flushed", "_high")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, handler: Handler,
                 on_readable: Callable[[], None], high_water: int = HIGH_WATER) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.handler = handler
        self.on_readable = on_readable
        self.tls = isinstance(sock, ssl.SSLSocket)
        self._out: deque[bytes] = deque()
        self._out_size = 0
        self._pinned = False  # a TLS write must be retried with the same bytes
        self.reading = False
        self._writer = False
        self._backlog = False
        self.closed = False
        self._close_when_flushed = False
        self._high = high_water

    @property
    def backlogged(self) -> bool:
        """Whether the output queue passed the high-water mark and has not drained yet."""
        return self._backlog

    def resume_reading(self) -> None:
        if self.reading or self.closed or self._close_when_flushed:
            return
        self.reading = True
        self.loop.add_reader(self.fd, self._readable)
        if self.tls and self.sock.pending():  # decrypted bytes already inside OpenSSL
            self.loop.call_soon(self._readable)

    def pause_reading(self) -> None:
        if self.reading:
            self.reading = False
            if not self.closed:
                self.loop.remove_reader(self.fd)

    def _readable(self) -> None:
        if not self.reading:
            return
        try:
            self.on_readable()
        except _WOULD_BLOCK:
            return
        except (OSError, ssl.SSLError) as exc:
            self.handler.channel_error(self, exc)

    @property
    def backlog(self) -> int:
        return self._out_size

    def write(self, data: Bytes) -> None:
        """Send data (a view of a reused buffer is fine: what cannot go out now is copied)."""
        if self.closed or not data:
            return
        if not self._out:
            try:
                sent = self.sock.send(data)
            except _WOULD_BLOCK:
                sent = 0
                self._pinned = self.tls
            except (OSError, ssl.SSLError) as exc:
                self.handler.channel_error(self, exc)
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._queue(bytes(data))

    def writev(self, pieces: list[bytes], size: int) -> None:
        """Send pieces of `size` bytes in all, with one sendmsg on a plain socket."""
        if self.closed or not size:
            return
        if self._out or self.tls or len(pieces) > IOV_LIMIT:
            self.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            return
        try:
            sent = self.sock.sendmsg(pieces)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self.handler.channel_error(self, exc)
            return
        if sent < size:
            self._queue(b"".join(pieces)[sent:])

    def _queue(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        if not self._writer:
            self._writer = True
            self.loop.add_writer(self.fd, self._writable)
        if not self._backlog and self._out_size > self._high:
            self._backlog = True
            self.handler.channel_backlog(self, True)

    def _writable(self) -> None:
        while self._out:
            if not self._pinned and len(self._out) > 1:
                joined = b"".join(self._out)
                self._out.clear()
                self._out.append(joined)
            head = self._out[0]
            try:
                sent = self.sock.send(head)
            except _WOULD_BLOCK:
                self._pinned = self.tls
                return
            except (OSError, ssl.SSLError) as exc:
                self.handler.channel_error(self, exc)
                return
            self._pinned = False
            self._out_size -= sent
            if sent < len(head):
                self._out[0] = head[sent:]
                return
            self._out.popleft()
        self._writer = False
        self.loop.remove_writer(self.fd)
        if self._backlog and self._out_size <= self._high // 8:
            self._backlog = False
            self.handler.channel_backlog(self, False)
        if self._close_when_flushed:
            self.close()

    def close_when_flushed(self) -> None:
        if self._out:
            self._close_when_flushed = True
            self.pause_reading()
        else:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.pause_reading()
        self.closed = True
        if self._writer:
            self.loop.remove_writer(self.fd)
            self._writer = False
        self._out.clear()
        self._out_size = 0
        try:
            self.sock.close()
        except OSError:
            pass


async def wait_fd(loop: asyncio.AbstractEventLoop, sock: socket.socket, write: bool = False) -> None:
    """Wait until the socket is readable (or writable)."""
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    fd = sock.fileno()
    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def tls_handshake(loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket) -> None:
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            await wait_fd(loop, sock)
        except ssl.SSLWantWriteError:
            await wait_fd(loop, sock, write=True)


async def recv_some(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int = 65536) -> bytes:
    """The next bytes from the socket (b'' at end of stream)."""
    while True:
        try:
            return sock.recv(size)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            await wait_fd(loop, sock)
        except ssl.SSLWantWriteError:
            await wait_fd(loop, sock, write=True)


async def send_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
            view = view[sent:]
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            await wait_fd(loop, sock, write=True)
        except ssl.SSLWantReadError:
            await wait_fd(loop, sock)


class Reader:
    """Exact-size reads over `recv_some`, keeping what arrives beyond."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop, self.sock, self.buffer = loop, sock, bytearray()

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            data = await recv_some(self.loop, self.sock)
            if not data:
                raise ConnectionError("connection closed during the handshake")
            self.buffer += data
        chunk = bytes(self.buffer[:size])
        del self.buffer[:size]
        return chunk


async def connect(loop: asyncio.AbstractEventLoop, family: int, address: tuple) -> socket.socket:
    """A connected non-blocking TCP socket with TCP_NODELAY."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock
