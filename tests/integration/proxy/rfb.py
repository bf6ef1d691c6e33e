"""A tiny RFB 3.8 client over a WebSocket, enough to log in with the VNC password."""
from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Callable
from typing import TypeVar

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from websockets.asyncio.client import connect

T = TypeVar("T")


def vnc_auth_response(challenge: bytes, password: str) -> bytes:
    """VNC authentication: DES of the challenge with the password, each key byte bit-reversed."""
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode()[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


class RfbClient:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.buffer = b""

    async def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            message = await self.ws.recv()
            self.buffer += message if isinstance(message, bytes) else message.encode()
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return chunk

    async def login(self, password: str) -> tuple[int, int]:
        """Version, VNC auth, ClientInit; returns the framebuffer size from ServerInit."""
        assert await self.read(12) == b"RFB 003.008\n"
        await self.ws.send(b"RFB 003.008\n")
        count = (await self.read(1))[0]
        assert 2 in await self.read(count)
        await self.ws.send(b"\x02")
        await self.ws.send(vnc_auth_response(await self.read(16), password))
        assert await self.read(4) == b"\0\0\0\0", "VNC authentication failed"
        await self.ws.send(b"\x01")
        width, height = struct.unpack(">HH", await self.read(4))
        return width, height


def console_login(url: str, password: str, server_hostname: str, *, cafile: str | None = None,
                  cadata: str | None = None) -> tuple[int, int]:
    """Open a console as noVNC does (TLS verified with the engine CA, subprotocol `binary`) and log in to the
    VNC server behind the proxy; returns the screen size it announced."""
    async def login() -> tuple[int, int]:
        context = ssl.create_default_context(cafile=cafile, cadata=cadata)
        async with connect(url, ssl=context, server_hostname=server_hostname, subprotocols=["binary"]) as ws:
            return await RfbClient(ws).login(password)

    return asyncio.run(login())


def login_across(url: str, password: str, server_hostname: str, action: Callable[[], T], *,
                 cafile: str | None = None, cadata: str | None = None) -> tuple[tuple[int, int], T]:
    """Open a console up to the RFB banner, run `action` (a re-run, a reload), then log in on that same
    connection: the console outlived what `action` did. Returns the screen size and what `action` returned."""
    async def session() -> tuple[tuple[int, int], T]:
        context = ssl.create_default_context(cafile=cafile, cadata=cadata)
        async with connect(url, ssl=context, server_hostname=server_hostname, subprotocols=["binary"]) as ws:
            client = RfbClient(ws)
            assert await client.read(12) == b"RFB 003.008\n"
            done = await asyncio.to_thread(action)
            client.buffer = b"RFB 003.008\n" + client.buffer
            return await client.login(password), done

    return asyncio.run(session())
