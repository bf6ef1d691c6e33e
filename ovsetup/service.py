"""Who runs the proxy: systemd where setup manages the unit, otherwise a proxy started by hand with
`--pidfile`, which setup tells to reload (SIGHUP) and cleanup stops (SIGTERM)."""
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


def systemd_running() -> bool:
    """systemd runs this machine (the test sd_booted() makes)."""
    return Path("/run/systemd/system").is_dir()


def setup_manages_service(owns_system: bool) -> bool:
    """Setup enables, restarts and stops the unit itself only as root on / with systemd running."""
    return owns_system and systemd_running()
