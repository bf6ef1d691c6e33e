"""One console session: WebSocket frames from the browser <-> raw bytes to the VNC server."""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
import time
from typing import TYPE_CHECKING

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from wsproxy.netio import Channel

if TYPE_CHECKING:
    from wsproxy.server import Proxy

log = logging.getLogger("wsproxy.session")


class Session:
    """Relays both ways until either side closes; backpressure pauses the faster side."""

    __slots__ = ("proxy", "ident", "peer", "target", "ws", "client", "server", "base64", "started",
                 "last_active", "to_target", "to_client", "_swallow", "_prefix", "_text_rest", "closed")

    def __init__(self, proxy: Proxy, ident: int, peer: str, target: str, ws: ServerProtocol,
                 client_sock: socket.socket, server_sock: socket.socket, subprotocol: str | None,
                 swallow: bytes = b"", prefix: bytes = b"") -> None:
        loop = asyncio.get_running_loop()
        self.proxy = proxy
        self.ident = ident
        self.peer = peer
        self.target = target
        self.ws = ws
        limit = proxy.config.max_session_buffer
        self.client = Channel(loop, client_sock, self, limit)
        self.server = Channel(loop, server_sock, self, limit)
        self.base64 = subprotocol == "base64"
        self.started = self.last_active = time.monotonic()
        self.to_target = self.to_client = 0
        self._swallow = swallow
        self._prefix = prefix
        self._text_rest = b""
        self.closed = False

    def start(self) -> None:
        """Send the 101 (and a VeNCrypt prefix), then relay."""
        self._flush_ws()
        if self._prefix:
            self._send_to_client(self._prefix)
            self._prefix = b""
        self.client.resume_reading()
        self.server.resume_reading()
        self._process_ws_events()  # frames that arrived together with the handshake

    # --- Handler callbacks from the two channels ---
    def channel_data(self, channel: Channel, data: bytes) -> None:
        self.last_active = time.monotonic()
        if channel is self.server:
            self._send_to_client(data)
        else:
            self.ws.receive_data(data)
            self._process_ws_events()

    def channel_eof(self, channel: Channel) -> None:
        if channel is self.server:
            self.close(CloseCode.NORMAL_CLOSURE, "target closed")
        else:
            self.ws.receive_eof()
            self.finish()

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

    # --- WebSocket side ---
    def _send_to_client(self, data: bytes) -> None:
        self.to_client += len(data)
        self.proxy.bytes_to_client += len(data)
        if self.base64:
            self.ws.send_text(base64.b64encode(data))
        else:
            self.ws.send_binary(data)
        self._flush_ws()

    def _flush_ws(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.client.write(chunk)
            else:
                self.client.close_when_flushed()

    def _process_ws_events(self) -> None:
        for event in self.ws.events_received():
            if not isinstance(event, Frame):
                continue
            data = event.data
            if event.opcode is Opcode.TEXT or (self.base64 and event.opcode is Opcode.CONT):
                try:
                    data = self._decode_text(data)
                except binascii.Error:
                    self.close(CloseCode.INVALID_DATA, "bad base64")
                    return
            elif event.opcode not in (Opcode.BINARY, Opcode.CONT):
                continue
            if self._swallow:
                data = self._check_swallow(data)
                if data is None:
                    return
            if data:
                self.to_target += len(data)
                self.proxy.bytes_to_target += len(data)
                self.server.write(data)
        self._flush_ws()
        if self.ws.state is State.CLOSED or self.ws.close_expected():
            self.finish()

    def _decode_text(self, data: bytes) -> bytes:
        data = self._text_rest + data
        usable = len(data) - len(data) % 4
        self._text_rest = data[usable:]
        return base64.b64decode(data[:usable], validate=True)

    def _check_swallow(self, data: bytes) -> bytes | None:
        """Drop the browser's RFB version and security choice that the proxy already answered."""
        take = min(len(self._swallow), len(data))
        if data[:take] != self._swallow[:take]:
            self.close(CloseCode.PROTOCOL_ERROR, "unexpected RFB handshake")
            return None
        self._swallow = self._swallow[take:]
        return data[take:]

    # --- ending ---
    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the WebSocket politely, then both sockets."""
        if self.closed:
            return
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
            self._flush_ws()
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
