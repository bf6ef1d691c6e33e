"""The relay through the real daemon to a real TCP echo target, byte for byte: random message sizes
(1 B to MAX_FRAME_SIZE) both ways, random masks, fragmented messages, pings in between (also between
fragments), the base64 subprotocol; and the protocol errors, each closed with its code."""
from __future__ import annotations

import base64
import os
import random
import select
import socket
import ssl
import struct
import threading
import time

import pytest

from tests.integration.proxy.wsraw import open_upgrade

pytestmark = pytest.mark.integration
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MiB = 1024 * 1024


def masked(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None, rsv: int = 0) -> bytes:
    """A client frame with a random mask key."""
    mask = os.urandom(4) if mask is None else mask
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack(">BB", first, 0x80 | length)
    elif length < 65536:
        head = struct.pack(">BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack(">BBQ", first, 0x80 | 127, length)
    return head + mask + _xor(payload, mask)


def _xor(payload: bytes, mask: bytes) -> bytes:
    """The payload masked (RFC 6455 section 5.3)."""
    length = len(payload)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


class Frames:
    """Server frames from a byte stream: (fin, opcode, payload), checked unmasked."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bool, int, bytes]]:
        self.buffer += data
        out, buf, pos = [], self.buffer, 0
        while len(buf) - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            assert not second & 0x80, "the server masked a frame"
            assert not first & 0x70, "reserved bits set"
            length, size = second & 0x7F, 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length, size = struct.unpack_from(">H", buf, pos + 2)[0], 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length, size = struct.unpack_from(">Q", buf, pos + 2)[0], 10
            if len(buf) - pos < size + length:
                break
            out.append((bool(first & 0x80), first & 0x0F, bytes(buf[pos + size:pos + size + length])))
            pos += size + length
        del buf[:pos]
        return out


def pump(sock: ssl.SSLSocket, outgoing: bytes, on_frame, done, timeout: float = 60) -> None:
    """Send outgoing and read frames at once, in one thread (an SSL object is not for two threads)."""
    sock.setblocking(False)
    frames, pos, deadline = Frames(), 0, time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        want_write = [sock] if pos < len(outgoing) else []
        readable, writable, _ = select.select([sock], want_write, [], 1)
        if writable:
            try:
                pos += sock.send(outgoing[pos:pos + 256 * 1024])  # a retry sends the same slice
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        while readable or sock.pending():
            readable = []
            try:
                data = sock.recv(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not data:
                raise ConnectionError("the proxy closed")
            for frame in frames.feed(data):
                on_frame(*frame)


def sizes(rng: random.Random, count: int, top: int = MiB) -> list[int]:
    """Message sizes from 1 byte to top, log-uniform, with both ends and the length-field edges."""
    fixed = [1, 2, 3, 125, 126, 127, 65535, 65536, 65537, top]
    return fixed + [min(top, max(1, int(2 ** rng.uniform(0, 20)))) for _ in range(count - len(fixed))]


def client_stream(rng: random.Random, messages: list[bytes], opcode: int) -> tuple[bytes, list[bytes]]:
    """The frames for messages, some fragmented at random points, pings between and among them."""
    out, pings = [], []
    for number, message in enumerate(messages):
        cuts = sorted(rng.sample(range(1, len(message)), min(len(message) - 1, rng.choice((0, 0, 1, 3)))))
        parts = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)], strict=True)]
        for index, part in enumerate(parts):
            out.append(masked(opcode if index == 0 else CONT, part, fin=index == len(parts) - 1))
            if rng.random() < 0.2:
                ping = f"ping {number}.{index}".encode()
                pings.append(ping)
                out.append(masked(PING, ping))
    return b"".join(out), pings


def relay_exactly(proxy, port: int, subprotocol: str, seed: int) -> None:
    rng = random.Random(seed)
    top = MiB if subprotocol == "binary" else MiB * 3 // 4  # base64 of it: MAX_FRAME_SIZE
    messages = [rng.randbytes(n) for n in sizes(rng, 40, top)]
    expected = b"".join(messages)
    if subprotocol == "base64":
        encoded = [base64.b64encode(m) for m in messages]
        stream, pings = client_stream(rng, encoded, TEXT)
    else:
        stream, pings = client_stream(rng, messages, BINARY)
    received, pongs = bytearray(), []

    def on_frame(fin: bool, opcode: int, payload: bytes) -> None:
        assert fin, "the proxy fragments nothing"
        if opcode == PONG:
            pongs.append(payload)
            return
        assert opcode != CLOSE, f"closed: {payload!r}"
        if subprotocol == "base64":
            assert opcode == TEXT
            received.extend(base64.b64decode(payload, validate=True))
        else:
            assert opcode == BINARY
            received.extend(payload)
        assert received == expected[:len(received)], f"bytes differ near offset {len(received)}"

    with upgraded(proxy, port, subprotocol) as sock:
        pump(sock, stream, on_frame, lambda: len(received) >= len(expected) and len(pongs) >= len(pings))
    assert bytes(received) == expected
    assert pongs == pings
    assert "Traceback" not in proxy.log()


def upgraded(proxy, port: int, subprotocol: str = "binary") -> ssl.SSLSocket:
    sock = open_upgrade(proxy.port, proxy.ca_file, proxy.ticket("127.0.0.1", port))
    if subprotocol != "binary":  # open_upgrade offers binary; base64 needs its own request
        sock.close()
        sock = _upgrade_base64(proxy, port)
    return sock


def _upgrade_base64(proxy, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(proxy.ca_file))
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", proxy.port), timeout=10), server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /{proxy.ticket('127.0.0.1', port)} HTTP/1.1\r\nHost: localhost:{proxy.port}\r\n"
                 f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: base64\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        assert byte, "closed before the 101"
        head += byte
    assert head.startswith(b"HTTP/1.1 101 ") and b"base64" in head, head
    return sock


def test_binary_relay_is_byte_exact(proxy, echo):
    relay_exactly(proxy, echo.port, "binary", 11)


def test_base64_relay_is_byte_exact(proxy, echo):
    relay_exactly(proxy, echo.port, "base64", 12)


def test_frames_sent_with_the_request_do_not_come_before_the_101(proxy, echo):
    """A client that does not wait for the 101 (RFC 6455 says it must): the 101 still comes first
    and the session relays what follows."""
    ctx = ssl.create_default_context(cafile=str(proxy.ca_file))
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", proxy.port), timeout=10),
                         server_hostname="localhost") as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /{proxy.ticket('127.0.0.1', echo.port)} HTTP/1.1\r\nHost: localhost\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n").encode()
        sock.sendall(request + masked(PING, b"p") + masked(BINARY, b"early"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 101 "), answer[:40]
        frames = Frames()
        got = frames.feed(answer.split(b"\r\n\r\n", 1)[1])
        sock.sendall(masked(BINARY, b"late"))
        while not b"".join(p for _, op, p in got if op == BINARY).endswith(b"late"):
            got += frames.feed(sock.recv(65536))
    assert "Traceback" not in proxy.log()


def close_code(sock: ssl.SSLSocket, data: bytes) -> tuple[int, str]:
    """Send data; the code and reason of the close frame the proxy answers with (then it closes)."""
    sock.sendall(data)
    frames = Frames()
    while True:
        chunk = sock.recv(65536)
        assert chunk, "closed without a close frame"
        for _, opcode, payload in frames.feed(chunk):
            if opcode == CLOSE:
                try:
                    assert sock.recv(65536) == b""  # and then the connection ends
                except (ConnectionResetError, ssl.SSLEOFError):
                    pass
                return struct.unpack(">H", payload[:2])[0], payload[2:].decode()


@pytest.mark.parametrize(("data", "code"), [
    (struct.pack(">BB", 0x82, 5) + b"hello", 1002),  # not masked
    (masked(0x3, b"x"), 1002),  # reserved opcode
    (masked(BINARY, b"x", rsv=0x40), 1002),  # a reserved bit, no extension negotiated
    (masked(PING, b"x" * 126), 1002),  # control frame over 125 bytes
    (masked(PING, b"x", fin=False), 1002),  # fragmented control frame
    (masked(CONT, b"x"), 1002),  # continuation with no message
    (masked(BINARY, b"x", fin=False) + masked(BINARY, b"y"), 1002),  # new message inside one
    (masked(TEXT, b"\xff\xfe"), 1007),  # not UTF-8
    (masked(TEXT, b"not base64!"), 1007),
    (masked(CLOSE, struct.pack(">H", 999)), 1002),  # invalid close code
    (masked(CLOSE, b"x"), 1002),  # close payload of one byte
    (masked(CLOSE, struct.pack(">H", 1000) + b"\xff"), 1007),  # close reason not UTF-8
    (masked(BINARY, b"x" * (MiB + 1))[:1000], 1009),  # refused on its header
    (masked(BINARY, b"x" * MiB, fin=False) + masked(CONT, b"y"), 1009),  # the message, not only a frame
])
def test_protocol_errors_close_with_their_code(proxy, echo, data, code):
    with upgraded(proxy, echo.port) as sock:
        assert close_code(sock, data)[0] == code
    time.sleep(0.1)
    assert "Traceback" not in proxy.log()


def test_close_from_the_client_is_echoed(proxy, echo):
    with upgraded(proxy, echo.port) as sock:
        payload = struct.pack(">H", 1000) + "bye ✓".encode()
        assert close_code(sock, masked(BINARY, b"x") + masked(CLOSE, payload)) == (1000, "bye ✓")


def test_target_closing_closes_with_1000(proxy):
    with socket.create_server(("127.0.0.1", 0)) as server:
        def serve() -> None:
            conn, _ = server.accept()
            conn.sendall(b"bye")
            conn.close()
        threading.Thread(target=serve, daemon=True).start()
        with upgraded(proxy, server.getsockname()[1]) as sock:
            frames, got = Frames(), []
            while not any(op == CLOSE for _, op, _ in got):
                chunk = sock.recv(65536)
                assert chunk
                got += frames.feed(chunk)
    assert got[0] == (True, BINARY, b"bye")
    assert struct.unpack(">H", got[-1][2][:2])[0] == 1000
