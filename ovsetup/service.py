"""Who runs the proxy: systemd where setup manages the unit, otherwise a proxy started by hand with
`--pidfile`, which setup tells to reload (SIGHUP) and cleanup stops (SIGTERM). Also the service user
(made in the transaction, so a failed run removes it) and the firewalld opening."""
from __future__ import annotations

import logging
import pwd
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from .core.errors import SetupError

log = logging.getLogger(__name__)
# Holds the service user's name when setup created it: cleanup removes only such a user.
CREATED_USER_RECORD = PurePosixPath("/var/lib/ovirt-engine/setup/websocket-proxy-created-user")
# ProtectHome=yes in the unit hides these from the service.
HIDDEN_BY_SANDBOX = (PurePosixPath("/root"), PurePosixPath("/home"), PurePosixPath("/run/user"))


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


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class ServiceUser:
    """A transaction element: `useradd --system` in commit; abort stops `unit` (which this run started, as
    the user was new) and removes the user again."""

    def __init__(self, name: str, unit: str) -> None:
        self.name = name
        self.unit = unit
        self.created = False

    def __str__(self) -> str:
        return f"user {self.name}"

    def prepare(self) -> None:
        if shutil.which("useradd") is None:
            raise SetupError(f"cannot create the service user {self.name}: useradd is not installed")

    def commit(self) -> None:
        if user_exists(self.name):
            return
        run(["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", self.name])
        self.created = True
        log.debug("created the user %s", self.name)

    def abort(self) -> None:
        if self.created:
            if systemd_running():
                subprocess.run(["systemctl", "stop", self.unit], capture_output=True)
                subprocess.run(["systemctl", "daemon-reload"], capture_output=True)
            run(["userdel", self.name])
            self.created = False
            log.debug("removed the user %s", self.name)


def run(argv: list[str]) -> str:
    """Run a system tool; its failure is a SetupError naming the command and what it said."""
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise SetupError(f"{' '.join(argv)} failed (exit {result.returncode})" + (f": {said[-1]}" if said else ""))
    return result.stdout


def executable_problem(executable: Path) -> str | None:
    """Why the service user could not run `executable` under the unit's sandbox, or None."""
    for path in (PurePosixPath(executable), PurePosixPath(executable.resolve())):
        for hidden in HIDDEN_BY_SANDBOX:
            if path.is_relative_to(hidden):
                return (f"{executable} lies below {hidden}, which the service's sandbox (ProtectHome=yes) hides: "
                        f"install the product elsewhere, for example in /opt")
    if not executable.is_file():
        return f"{executable} does not exist"
    for path in (executable, executable.resolve()):
        for folder in path.parents:
            if not folder.stat().st_mode & 0o001:
                return f"{folder} is not searchable by other users, so the service user cannot reach {executable}"
        if not path.stat().st_mode & 0o004:
            return f"{path} is not readable by other users, so the service user cannot run it"
    return None


def firewalld_running() -> bool:
    return shutil.which("firewall-cmd") is not None and subprocess.run(
        ["firewall-cmd", "--state"], capture_output=True).returncode == 0


def _zones() -> list[str]:
    """The active zones and the default zone (which takes interfaces no zone names). firewalld 2 (Debian 13)
    marks the default one `public (default)`: the zone is the first word."""
    active = subprocess.run(["firewall-cmd", "--get-active-zones"], capture_output=True, text=True).stdout
    zones = {line.split()[0] for line in active.splitlines() if line and not line[0].isspace()}
    zones.add(run(["firewall-cmd", "--get-default-zone"]).strip())
    return sorted(zones)


def open_service(service: str, reload: bool) -> list[str]:
    """Add the firewalld service to every active zone, permanent and runtime (after a reload when its
    definition changed); return the zones where something was added."""
    if reload:
        run(["firewall-cmd", "--reload"])
    opened = []
    for zone in _zones():
        for scope in (["--permanent"], []):
            query = ["firewall-cmd", *scope, "--zone", zone, "--query-service", service]
            if subprocess.run(query, capture_output=True).returncode != 0:
                run(["firewall-cmd", *scope, "--zone", zone, "--add-service", service])
                opened.append(zone)
    return sorted(set(opened))


def close_service(service: str) -> list[str]:
    """Remove the firewalld service from every zone that has it, permanent and runtime."""
    closed = []
    for zone in run(["firewall-cmd", "--get-zones"]).split():
        for scope in (["--permanent"], []):
            query = ["firewall-cmd", *scope, "--zone", zone, "--query-service", service]
            if subprocess.run(query, capture_output=True).returncode == 0:
                run(["firewall-cmd", *scope, "--zone", zone, "--remove-service", service])
                closed.append(zone)
    return sorted(set(closed))
