"""VeNCrypt X509VNC toward a VNC server that wants TLS (libvirt's `vnc_tls`), as oVirt's proxy does.

The proxy answers the RFB version and the VeNCrypt negotiation itself, terminates the TLS toward
the server (verifying its certificate: see `ProxyConfig.vnc_tls_context`), and tells the browser's
noVNC that the server offers plain VNC authentication, so the VNC password exchange passes through
end to end (inside TLS on the server's side).
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from dataclasses import dataclass

from wsproxy.netio import Reader, send_all, tls_handshake

RFB_38 = b"RFB 003.008\n"
VENCRYPT = 19
X509VNC = 261
VNC_AUTH = 2
X509_V_ERR_HOSTNAME_MISMATCH = 62
X509_V_ERR_IP_ADDRESS_MISMATCH = 64


class VeNCryptError(Exception):
    """The server did not offer what the ticket said (VeNCrypt with X509VNC)."""


@dataclass(frozen=True)
class Negotiated:
    sock: ssl.SSLSocket
    to_client: bytes  # what the browser must see first: the server's version and "VNC auth only"
    from_client: bytes  # what the browser will answer, swallowed by the proxy


def is_name_failure(exc: ssl.SSLCertVerificationError) -> bool:
    """Whether the chain verified but the certificate names another host (or address)."""
    return exc.verify_code in (X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH)


async def negotiate(loop: asyncio.AbstractEventLoop, sock: socket.socket, ctx: ssl.SSLContext,
                    host: str) -> Negotiated:
    """The VeNCrypt exchange, then TLS verified by `ctx` (its check_hostname decides whether `host` must match)."""
    reader = Reader(loop, sock)
    version = await reader.exactly(12)
    if version != RFB_38:
        raise VeNCryptError(f"server speaks {version[:11]!r}, not RFB 3.8")
    await send_all(loop, sock, RFB_38)
    count = (await reader.exactly(1))[0]
    if count == 0:
        length = struct.unpack(">I", await reader.exactly(4))[0]
        reason = (await reader.exactly(min(length, 1024))).decode(errors="replace")
        raise VeNCryptError(f"server refused: {reason}")
    if VENCRYPT not in await reader.exactly(count):
        raise VeNCryptError("server does not offer VeNCrypt")
    await send_all(loop, sock, bytes([VENCRYPT]))
    major, minor = await reader.exactly(2)
    if (major, minor) < (0, 2):
        raise VeNCryptError(f"VeNCrypt {major}.{minor} is older than 0.2")
    await send_all(loop, sock, b"\x00\x02")
    if (await reader.exactly(1)) != b"\x00":
        raise VeNCryptError("server refused VeNCrypt 0.2")
    count = (await reader.exactly(1))[0]
    subtypes = struct.unpack(f">{count}I", await reader.exactly(4 * count))
    if X509VNC not in subtypes:
        raise VeNCryptError(f"server does not offer X509VNC (offers {list(subtypes)})")
    await send_all(loop, sock, struct.pack(">I", X509VNC))
    if (await reader.exactly(1)) != b"\x01":
        raise VeNCryptError("server refused X509VNC")
    if reader.buffer:
        raise VeNCryptError("server sent data before the TLS handshake")
    tls = ctx.wrap_socket(sock, server_side=False, do_handshake_on_connect=False,
                          server_hostname=host if ctx.check_hostname else None)
    await tls_handshake(loop, tls)
    return Negotiated(tls, RFB_38 + bytes([1, VNC_AUTH]), RFB_38 + bytes([VNC_AUTH]))
