"""Host name checks: syntax is an error, a name that does not resolve is only a warning."""
from __future__ import annotations

import re
import socket

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def syntax_problem(name: str) -> str | None:
    if not name or len(name) > 253:
        return f"{name!r} is not a host name (1 to 253 characters)"
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return f"{name!r} is not a valid host name (letters, digits and '-' between dots)"
    if labels[-1].isdigit():
        return f"{name!r} is an address, not a host name"
    return None


def port_problem(port: int) -> str | None:
    """Why `port` cannot be a TCP port, or None."""
    return None if 0 < port < 65536 else f"port {port} is out of range 1..65535"


def resolves(name: str) -> bool:
    try:
        socket.getaddrinfo(name, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def default_fqdn() -> str:
    return socket.getfqdn()
