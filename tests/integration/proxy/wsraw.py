"""A raw WebSocket client over a TLS socket, for tests that must control every byte (and not read)."""
from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
from pathlib import Path


def open_upgrade(port: int, ca_file: Path, ticket: str) -> ssl.SSLSocket:
    """A wss:// connection after its 101 (which is checked), with nothing read beyond the headers."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /{ticket} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
                 .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        assert byte, "closed before the 101"
        head += byte
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame (mask key zero, so the payload goes as is), as a client must send."""
    length = len(payload)
    if length < 126:
        header = struct.pack(">BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + b"\0\0\0\0" + payload


def read_frames(sock: ssl.SSLSocket, buffer: bytearray) -> list[tuple[int, bytes]]:
    """Read once from the socket and return the (opcode, payload) of every whole server frame buffered."""
    data = sock.recv(1 << 20)
    if not data:
        raise ConnectionError("closed")
    buffer += data
    frames = []
    while len(buffer) >= 2:
        opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                break
            length, offset = struct.unpack(">H", buffer[2:4])[0], 4
        elif length == 127:
            if len(buffer) < 10:
                break
            length, offset = struct.unpack(">Q", buffer[2:10])[0], 10
        if len(buffer) < offset + length:
            break
        frames.append((opcode, bytes(buffer[offset:offset + length])))
        del buffer[:offset + length]
    return frames


def exchange(port: int, ca_file: Path, request: bytes, timeout: float = 10) -> bytes:
    """Send raw request bytes over TLS and return everything the proxy answers until it closes."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout),
                         server_hostname="localhost") as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, ssl.SSLEOFError):
            pass
        return answer
