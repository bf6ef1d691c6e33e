"""One console session: WebSocket frames from the browser <-> raw bytes to the VNC server.

The data path allocates nothing per read toward the browser: the target is read into one buffer the
process reuses, with room in front for the frame header, and header and payload go out in one TLS
write (copied only when the socket would block). Toward the target, the browser is read one TLS record
at a time, each frame unmasked as it arrives, and up to RECORDS records per wake-up go out with one
sendmsg. The buffers are shared by every session (one event loop, one thread): an idle session holds
none of them.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING

from websockets.frames import CloseCode, Frame
from websockets.protocol import State
from websockets.server import ServerProtocol

from wsproxy import frames
from wsproxy.frames import ClientFrames, FrameError
from wsproxy.netio import Channel

if TYPE_CHECKING:
    from wsproxy.server import Proxy

log = logging.getLogger("wsproxy.session")
DOWN_READ = 256 * 1024  # one read from the target, one frame to the browser
RECORD = 16 * 1024  # the most plaintext one TLS record carries
RECORDS = 16  # records read from the browser per wake-up before the target gets them
_HEAD = frames.MAX_HEADER
_down = bytearray(_HEAD + DOWN_READ)
_down_view = memoryview(_down)
_down_payload = _down_view[_HEAD:]
_up = bytearray(RECORD)
_up_view = memoryview(_up)
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Session:
    """Relays both ways until either side closes; backpressure pauses the faster side."""

    __slots__ = ("proxy", "ident", "peer", "target", "ws", "client", "server", "base64", "started",
                 "last_active", "to_target", "to_client", "frames", "_pending", "_pending_size", "_close_rcvd",
                 "_swallow", "_prefix", "_text_rest", "closed")

    def __init__(self, proxy: Proxy, ident: int, peer: str, target: str, ws: ServerProtocol,
                 client_sock: socket.socket, server_sock: socket.socket, subprotocol: str | None,
                 swallow: bytes = b"", prefix: bytes = b"") -> None:
        loop = asyncio.get_running_loop()
        self.proxy = proxy
        self.ident = ident
        self.peer = peer
        self.target = target
        self.ws: ServerProtocol | None = ws  # until start(): it holds the 101 and what came with the request
        limit = proxy.config.max_session_buffer
        self.client = Channel(loop, client_sock, self, self._from_client, limit)
        self.server = Channel(loop, server_sock, self, self._from_target, limit)
        self.base64 = subprotocol == "base64"
        self.started = self.last_active = time.monotonic()
        self.to_target = self.to_client = 0
        self.frames = ClientFrames(proxy.config.max_frame_size, self._client_data, self._client_control)
        self._pending: list[bytes] = []  # unmasked payload read this wake-up, for the target
        self._pending_size = 0
        self._close_rcvd: bytes | None = None
        self._swallow = swallow
        self._prefix = prefix
        self._text_rest = b""
        self.closed = False

    def start(self) -> None:
        """Send the 101 (and a VeNCrypt prefix), then relay."""
        early, failure = self._take_over()
        if self._prefix:
            self._send_to_client(self._prefix)
            self._prefix = b""
        if early and not self._relay_client(memoryview(early)):
            return
        if failure is not None:
            self.close(*failure)
            return
        self.client.resume_reading()
        self.server.resume_reading()

    def _take_over(self) -> tuple[bytes, tuple[int, str] | None]:
        """Send the 101 websockets queued and drop websockets. Return the frames that came with the
        request (a client should send none before the 101), serialized again to be read here, and
        the close code and reason if websockets failed one of them."""
        ws, self.ws = self.ws, None
        if ws is None:
            return b"", None
        for chunk in ws.data_to_send():
            if chunk.startswith(b"HTTP/"):  # its pongs or close for early frames are redone in order
                self.client.write(chunk)
        early = b"".join(event.serialize(mask=True) for event in ws.events_received() if isinstance(event, Frame))
        if ws.close_sent is not None and ws.close_rcvd is None:
            return early, (ws.close_sent.code, ws.close_sent.reason)
        if ws.state is State.OPEN and (ws.reader.buffer or not _at_frame_boundary(ws)):
            return early, (CloseCode.PROTOCOL_ERROR, "frame cut by the upgrade")
        return early, None

    # --- target -> browser ---
    def _from_target(self) -> None:
        server = self.server
        while True:
            n = server.sock.recv_into(_down_payload, DOWN_READ)
            if not n:
                self.close(CloseCode.NORMAL_CLOSURE, "target closed")
                return
            self.last_active = time.monotonic()
            if self.base64:
                self._send_to_client(_down_view[_HEAD:_HEAD + n])
            else:
                self.to_client += n
                self.proxy.bytes_to_client += n
                start = frames.header_into(_down, _HEAD, frames.BINARY, n)
                self.client.write(_down_view[start:_HEAD + n])
            if not (server.tls and server.reading and server.sock.pending()):
                return

    def _send_to_client(self, data: bytes | memoryview) -> None:
        self.to_client += len(data)
        self.proxy.bytes_to_client += len(data)
        if self.base64:
            self.client.write(frames.frame(frames.TEXT, base64.b64encode(data)))
        else:
            self.client.write(frames.frame(frames.BINARY, data))

    # --- browser -> target ---
    def _from_client(self) -> None:
        client = self.client
        recv_into, feed = client.sock.recv_into, self.frames.feed
        try:
            for _ in range(RECORDS):
                try:
                    n = recv_into(_up_view, RECORD)
                except _WOULD_BLOCK:
                    break
                if not n:
                    self._flush_to_target()
                    self.finish()
                    return
                feed(_up_view[:n])
                if self._close_rcvd is not None or not client.reading:
                    break
        except FrameError as exc:
            self._flush_to_target()
            self.close(exc.code, exc.reason)
            return
        except OSError:
            self._flush_to_target()
            raise
        self.last_active = time.monotonic()
        self._flush_to_target()
        if self._close_rcvd is not None:
            self._closed_by_client()

    def _relay_client(self, data: memoryview) -> bool:
        """Relay data from the browser that came with the request; False once the session ends."""
        try:
            self.frames.feed(data)
        except FrameError as exc:
            self._flush_to_target()
            self.close(exc.code, exc.reason)
            return False
        self._flush_to_target()
        if self._close_rcvd is not None:
            self._closed_by_client()
        return not self.closed

    def _closed_by_client(self) -> None:
        assert self._close_rcvd is not None
        self.client.write(frames.frame(frames.CLOSE, self._close_rcvd))  # the close echoed
        self.finish()

    def _client_data(self, payload: bytes, text: bool) -> None:
        if text:
            try:
                if not payload.isascii():  # not UTF-8, or not the base64 alphabet
                    raise binascii.Error
                payload = self._decode_text(payload)
            except binascii.Error:
                raise FrameError(CloseCode.INVALID_DATA, "bad base64") from None
        if self._swallow:
            payload = self._check_swallow(payload)
        if payload:
            self._pending.append(payload)
            self._pending_size += len(payload)

    def _client_control(self, opcode: int, payload: bytes) -> None:
        if opcode == frames.PING:
            self.client.write(frames.frame(frames.PONG, payload))
        elif opcode == frames.CLOSE:
            frames.check_close(payload)
            self._close_rcvd = payload
            self.frames.stopped = True

    def _flush_to_target(self) -> None:
        if not self._pending_size:
            return
        size, pieces = self._pending_size, self._pending
        self._pending, self._pending_size = [], 0
        self.to_target += size
        self.proxy.bytes_to_target += size
        self.server.writev(pieces, size)

    def _decode_text(self, data: bytes) -> bytes:
        data = self._text_rest + data
        usable = len(data) - len(data) % 4
        self._text_rest = data[usable:]
        return base64.b64decode(data[:usable], validate=True)

    def _check_swallow(self, data: bytes) -> bytes:
        """Drop the browser's RFB version and security choice that the proxy already answered."""
        take = min(len(self._swallow), len(data))
        if data[:take] != self._swallow[:take]:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "unexpected RFB handshake")
        self._swallow = self._swallow[take:]
        return data[take:]

    # --- Handler callbacks from the two channels ---
    def channel_error(self, channel: Channel, exc: Exception) -> None:
        side = "target" if channel is self.server else "client"
        log.debug("session %d: %s error: %s", self.ident, side, exc)
        if channel is self.server:
            self.close(CloseCode.INTERNAL_ERROR, "target error")
        else:
            self.finish()

    def channel_backlog(self, channel: Channel, full: bool) -> None:
        """Read only what cannot grow a full queue: the client's input feeds both queues (relayed data
        to the server, and the pongs and close frames it asks for), the server's only the client's."""
        if self.closed:
            return
        for reader, feeds in ((self.client, (self.client, self.server)), (self.server, (self.client,))):
            if any(queue.backlogged for queue in feeds):
                reader.pause_reading()
            else:
                reader.resume_reading()

    # --- ending ---
    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the WebSocket politely, then both sockets."""
        if self.closed:
            return
        if self.ws is not None:  # not started yet: the 101 goes first
            self._take_over()
        self.client.write(frames.close_frame(code, reason))
        self.finish()

    def finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.close()
        self.client.close_when_flushed()
        if not self.client.closed:
            asyncio.get_running_loop().call_later(5, self.client.close)
        self.proxy.session_ended(self)
        log.info("session %d end: peer %s target %s bytes to target %d to client %d duration %.1fs",
                 self.ident, self.peer, self.target, self.to_target, self.to_client,
                 time.monotonic() - self.started)


def _at_frame_boundary(ws: ServerProtocol) -> bool:
    """Whether websockets' parser waits for a new frame (not in the middle of one it began)."""
    gen = ws.parser
    while getattr(gen, "gi_yieldfrom", None) is not None:
        gen = gen.gi_yieldfrom
    code = getattr(gen, "gi_code", None)
    return code is not None and code.co_name == "at_eof"
