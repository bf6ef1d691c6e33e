"""WebSocket frames after the upgrade (RFC 6455 section 5), server side: headers for the frames we send,
and an incremental reader of the browser's frames that unmasks payloads as they arrive.

websockets' ServerProtocol does the upgrade; after it, this module takes over the data path, because
websockets reassembles and copies each frame before handing it on, which costs more CPU than the
encryption. No extensions are negotiated, so the reserved bits must be zero.
"""
from __future__ import annotations

import struct
from collections.abc import Callable

from websockets.exceptions import ProtocolError
from websockets.frames import Close

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (CONT, TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)
PROTOCOL_ERROR, INVALID_DATA, MESSAGE_TOO_BIG = 1002, 1007, 1009
MAX_HEADER = 10  # a server frame's header: no mask, at most 8 bytes of length
_H16 = struct.Struct(">BBH")
_H64 = struct.Struct(">BBQ")


class FrameError(Exception):
    """A frame the protocol forbids: the session closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def header(opcode: int, length: int) -> bytes:
    """The header of a final, unmasked frame of `length` bytes."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return _H16.pack(0x80 | opcode, 126, length)
    return _H64.pack(0x80 | opcode, 127, length)


def header_into(buf: bytearray, end: int, opcode: int, length: int) -> int:
    """Write that header into buf so that it ends at `end` (>= MAX_HEADER); return where it starts."""
    if length < 126:
        buf[end - 2] = 0x80 | opcode
        buf[end - 1] = length
        return end - 2
    if length < 65536:
        _H16.pack_into(buf, end - 4, 0x80 | opcode, 126, length)
        return end - 4
    _H64.pack_into(buf, end - 10, 0x80 | opcode, 127, length)
    return end - 10


def frame(opcode: int, payload: bytes) -> bytes:
    return header(opcode, len(payload)) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(CLOSE, Close(code, reason).serialize())


def check_close(payload: bytes) -> None:
    """Raise FrameError for a close frame's payload the RFC forbids (bad length, code or UTF-8)."""
    try:
        Close.parse(payload)
    except ProtocolError as exc:
        raise FrameError(PROTOCOL_ERROR, str(exc)) from None
    except UnicodeDecodeError as exc:
        raise FrameError(INVALID_DATA, f"{exc.reason} at position {exc.start}") from None


class ClientFrames:
    """The browser's frames, fed in pieces of any size.

    Data payloads go to `on_data(payload, text)` unmasked, piece by piece, as they arrive (a frame is
    never held whole); control frames (at most 125 bytes) go whole to `on_control(opcode, payload)`.
    Protocol errors raise FrameError. `max_size` bounds a frame and a fragmented message alike.
    """

    __slots__ = ("on_data", "on_control", "max_size", "stopped", "_left", "_mask", "_opcode", "_text",
                 "_message", "_message_size", "_head", "_control")

    def __init__(self, max_size: int, on_data: Callable[[bytes, bool], None],
                 on_control: Callable[[int, bytes], None]) -> None:
        self.on_data, self.on_control, self.max_size = on_data, on_control, max_size
        self.stopped = False  # set after a close frame: what follows it is ignored
        self._left = 0  # payload bytes still to come in the current frame
        self._mask = b""  # the current frame's mask, rotated to the next payload byte
        self._opcode = 0
        self._text = False  # the current data frame belongs to a text message
        self._message = -1  # the opcode (TEXT or BINARY) of the fragmented message in progress, or -1
        self._message_size = 0
        self._head = b""  # a header cut by the end of a read
        self._control = b""

    def feed(self, data: memoryview) -> None:
        pos, end = 0, len(data)
        while pos < end:
            left = self._left
            if left:
                n = end - pos if end - pos < left else left
                payload = apply_mask(data[pos:pos + n] if pos or n < end else data, self._mask)
                pos += n
                self._left = left = left - n
                if n & 3:
                    mask = self._mask
                    self._mask = mask[n & 3:] + mask[:n & 3]
                if self._opcode < 8:
                    self.on_data(payload, self._text)
                    continue
                self._control += payload
            elif self._head:
                head = self._head + bytes(data[pos:pos + 14 - len(self._head)])
                size = self._header(head, 0, len(head))
                if not size:
                    self._head = head
                    return
                pos += size - len(self._head)
                self._head = b""
            else:
                size = self._header(data, pos, end)
                if not size:
                    self._head = bytes(data[pos:end])
                    return
                pos += size
            if not self._left and self._opcode >= 8:
                payload, self._control = self._control, b""
                self.on_control(self._opcode, payload)
                if self.stopped:
                    return

    def _header(self, data: bytes | memoryview, pos: int, end: int) -> int:
        """Parse the header at pos: its size, or 0 if it is not all there yet."""
        if end - pos < 2:
            return 0
        first, second = data[pos], data[pos + 1]
        opcode = first & 0x0F
        if first & 0x70:
            raise FrameError(PROTOCOL_ERROR, "reserved bits must be 0")
        if not second & 0x80:
            raise FrameError(PROTOCOL_ERROR, "incorrect masking")
        length = second & 0x7F
        fin = first & 0x80
        if opcode in _CONTROL:
            if not fin:
                raise FrameError(PROTOCOL_ERROR, "fragmented control frame")
            if length > 125:
                raise FrameError(PROTOCOL_ERROR, "control frame too long")
        elif opcode == CONT:
            if self._message < 0:
                raise FrameError(PROTOCOL_ERROR, "unexpected continuation frame")
        elif opcode in _DATA:
            if self._message >= 0:
                raise FrameError(PROTOCOL_ERROR, "expected a continuation frame")
        else:
            raise FrameError(PROTOCOL_ERROR, f"invalid opcode: {opcode}")
        size = 6
        if length == 126:
            size = 8
            if end - pos < size:
                return 0
            length = data[pos + 2] << 8 | data[pos + 3]
        elif length == 127:
            size = 14
            if end - pos < size:
                return 0
            length = int.from_bytes(data[pos + 2:pos + 10], "big")
        elif end - pos < size:
            return 0
        if opcode < 8:
            total = length + (self._message_size if opcode == CONT else 0)
            if total > self.max_size:
                raise FrameError(MESSAGE_TOO_BIG, f"frame over size limit ({total} > {self.max_size} bytes)")
            if opcode != CONT:
                self._text = opcode == TEXT
            if fin:
                self._message, self._message_size = -1, 0
            else:
                self._message, self._message_size = (opcode if opcode != CONT else self._message), total
        self._opcode = opcode
        self._mask = bytes(data[pos + size - 4:pos + size])
        self._left = length
        return size
