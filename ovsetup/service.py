"""A proxy started by hand (no systemd) with `--pidfile`: find it, so setup can tell it to reload
(SIGHUP) and cleanup can stop it (SIGTERM)."""
from __future__ import annotations

from pathlib import Path


def running_proxy(pidfile: Path) -> int | None:
    """The pid in `pidfile` if that process is a running WebSocket proxy (a stale pidfile gives None)."""
    try:
        pid = int(pidfile.read_text().strip())
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"websocket-proxy" in command_line else None
