"""Who runs the proxy: systemd where setup manages the unit, otherwise a proxy started by hand with
`--pidfile`, which setup tells to reload (SIGHUP) and cleanup stops (SIGTERM). Also the step a re-run
takes with a running unit (the gentlest that is enough: reload, hand-over, restart), the service user
(made in the transaction, so a failed run removes it) and the firewalld opening."""
from __future__ import annotations

import enum
import logging
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
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


class Step(enum.Enum):
    """What a run does to the unit, gentlest last."""
    START = "start"  # not running: start it
    RESTART = "restart"  # systemd ends the whole unit: open consoles are closed
    HAND_OVER = "hand over"  # SIGUSR2: a successor with the installed code takes the listening socket
    RELOAD = "reload"  # SIGHUP: config and certificates re-read, sessions kept
    NOTHING = "nothing"


@dataclass(frozen=True)
class UnitState:
    """What `systemctl show` says about the running unit."""
    active: str  # ActiveState
    main_pid: int
    status: str  # StatusText: `...; version <V>; ...` from a proxy that can hand over

    @property
    def running(self) -> bool:
        return self.active in ("active", "reloading")

    @property
    def version(self) -> str | None:
        """The running proxy's version: the `version <V>` part of its status (parts are separated by `; `);
        None for a proxy that names none."""
        for part in self.status.split(";"):
            found = re.fullmatch(r"version (\S+)", part.strip())
            if found:
                return found.group(1)
        return None


def unit_state(unit: str) -> UnitState:
    out = run(["systemctl", "show", "-p", "ActiveState", "-p", "MainPID", "-p", "StatusText", unit])
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    pid = values.get("MainPID", "0")
    return UnitState(values.get("ActiveState", ""), int(pid) if pid.isdigit() else 0, values.get("StatusText", ""))


def installed_version() -> str:
    """The version of the product installed beside setup (the code a started or handed-over proxy runs)."""
    return metadata.version("ovirt-engine-wsp")


def proxy_port(config: bytes | None) -> str | None:
    """PROXY_PORT in a config file's content (None without the file or the key)."""
    for line in (config or b"").decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PROXY_PORT":
            return value.strip().strip("'\"")
    return None


def choose_step(state: UnitState, installed: str, *, port_changed: bool, files_changed: bool,
                new_code: bool = False) -> tuple[Step, str]:
    """The gentlest step that is enough for what changed, and why (for the log line).

    `new_code`: the caller installed the product again (the role's wheel install), whatever its version.
    A running proxy whose status names no version predates the installed one (which names it) and cannot
    hand over."""
    if not state.running:
        return Step.START, "it is not running"
    if port_changed:
        return Step.RESTART, "its port changed; open consoles are closed"
    if state.version is None:
        return Step.RESTART, (f"its status names no version, so it predates version {installed} and cannot hand "
                              "over; open consoles are closed")
    if new_code or state.version != installed:
        return Step.HAND_OVER, (f"version {installed} is installed and {state.version} runs; open consoles "
                                "stay with the old process until they end")
    if files_changed:
        return Step.RELOAD, "its configuration or certificates changed; open consoles stay"
    return Step.NOTHING, "nothing it uses changed"


HAND_OVER_TIMEOUT = 30.0


def hand_over(unit: str, installed: str, *, timeout: float = HAND_OVER_TIMEOUT, poll: float = 0.5,
              show: Callable[[str], UnitState] = unit_state) -> str | None:
    """Send SIGUSR2 to the unit's main process and wait until a new main process runs `installed` (the
    unit active, its status naming that version). None once it does, else why not (for one warning line)."""
    old = show(unit).main_pid
    try:
        run(["systemctl", "kill", "--kill-whom=main", "--signal=SIGUSR2", unit])
    except SetupError as exc:
        return str(exc)
    deadline = time.monotonic() + timeout
    while True:
        state = show(unit)
        if state.main_pid not in (0, old) and state.active == "active" and state.version == installed:
            log.info("Version %s took over %s (pid %d, was %d)", installed, unit, state.main_pid, old)
            return None
        if time.monotonic() >= deadline:
            return (f"no process of version {installed} took over within {timeout:g} s; "
                    f"main pid {state.main_pid}, {state.active}, status {state.status!r}")
        time.sleep(poll)


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
