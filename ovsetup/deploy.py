"""Deploy the proxy to other machines with Ansible (through ansible-runner), and remove it again.

The engine side builds a wheelhouse of this product and its dependencies once (cached, keyed by the
source and Python version); the role installs it offline on each target. `deploy()` and `remove()` take
plain values and return one `DeployResult` naming each host's outcome.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import ipaddress
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from ovcommon import paths
from ovcommon.paths import Root

from .core.transaction import atomic_write, make_parents
from .resources import resource_dir

log = logging.getLogger(__name__)
MODES = ("none", "remote", "hosts")
PACKAGE = "ovirt-engine-wsp"
PLAYBOOK = "websocket-proxy.yml"
GROUP = "websocket_proxy"
ROLE_PREFIX = "ovirt_websocket_proxy_"  # the role's variables
DEFAULT_PREFIX = "/opt/ovirt-websocket-proxy"
WHEELHOUSE_DIR = PurePosixPath("/var/lib/ovirt-engine/setup/wheelhouse")
WHEELHOUSE_FORMAT = "2"  # with pip's own wheel, which installs into a venv made --without-pip
SOURCE_PARTS = ("setup.py", "pyproject.toml", "ovsetup", "wsproxy", "plugins", "templates", "ansible")
Progress = Callable[[str], None]
QUIET_ACTIONS = {"ansible.builtin.include_tasks", "ansible.builtin.validate_argument_spec", "validate_argument_spec",
                 "ansible.builtin.set_fact", "ansible.builtin.meta"}


class DeployError(Exception):
    """The deployment cannot start (bad host list, no wheelhouse); the message says why."""


@dataclass(frozen=True)
class Target:
    fqdn: str
    address: str | None = None


def parse_hosts(lines: Iterable[str]) -> list[Target]:
    """`fqdn` or `fqdn address`, one host a line; blank lines and `#` comments are skipped."""
    targets = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise DeployError(f"{line.strip()!r}: expected 'fqdn' or 'fqdn address'")
        if len(words) == 2:
            try:
                ipaddress.ip_address(words[1])
            except ValueError:
                raise DeployError(f"{line.strip()!r}: {words[1]!r} is not an IP address") from None
        targets.append(Target(words[0], words[1] if len(words) == 2 else None))
    if len({t.fqdn for t in targets}) != len(targets):
        raise DeployError("a host is listed twice")
    return targets


@dataclass(frozen=True)
class Ssh:
    user: str = "root"
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None  # None: the user's ~/.ssh/known_hosts
    accept_new: bool = False

    @property
    def known_hosts_file(self) -> str:
        return self.known_hosts or str(Path("~/.ssh/known_hosts").expanduser())


@dataclass(frozen=True)
class Wheelhouse:
    archive: Path
    id: str
    python: str


def _source_tree() -> Path | None:
    top = Path(__file__).resolve().parent.parent
    return top if (top / "setup.py").is_file() and (top / "wsproxy").is_dir() else None


def _source_digest(top: Path) -> str:
    digest = hashlib.sha256()
    for part in SOURCE_PARTS:
        base = top / part
        files = sorted(base.rglob("*")) if base.is_dir() else [base]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(top)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def wheelhouse(root: Root) -> Wheelhouse:
    """The wheels of this product, its dependencies and pip as one tar below root's wheelhouse cache.

    Built from this source tree when there is one, else from the package index; reused while the
    source (or version) and the Python version stay the same."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    top = _source_tree()
    spec = str(top) if top else f"{PACKAGE}=={metadata.version(PACKAGE)}"
    key = hashlib.sha256(f"{WHEELHOUSE_FORMAT}\0{python}\0{_source_digest(top) if top else spec}".encode()
                         ).hexdigest()[:16]
    archive = root.path(WHEELHOUSE_DIR) / f"{PACKAGE}-{key}.tar"
    if archive.is_file():
        return Wheelhouse(archive, key, python)
    log.info("Preparing the wheelhouse for the proxy hosts (%s)", spec)
    with tempfile.TemporaryDirectory(prefix="wsp-wheels-") as tmp:
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                                 "--wheel-dir", tmp, spec, "pip"], capture_output=True, text=True)
        if result.returncode != 0:
            log.debug("pip wheel: %s", result.stdout + result.stderr)
            raise DeployError(f"cannot build the wheelhouse from {spec}: {result.stderr.strip().splitlines()[-1:]}")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for wheel in sorted(Path(tmp).glob("*.whl")):
                tar.add(wheel, arcname=wheel.name)
    make_parents(archive)
    atomic_write(archive, buffer.getvalue(), 0o644)
    return Wheelhouse(archive, key, python)


@dataclass
class HostResult:
    name: str
    ok: bool
    changed: int = 0
    task: str | None = None
    reason: str | None = None


@dataclass
class DeployResult:
    rc: int
    hosts: dict[str, HostResult] = field(default_factory=dict)
    artifacts: Path | None = None

    @property
    def failed(self) -> list[HostResult]:
        return [host for host in self.hosts.values() if not host.ok]

    def report_failures(self, logger: logging.Logger) -> str:
        """Log each failed host with its task and reason; return their names for the one-line error."""
        for host in self.failed:
            logger.error("%s: %s: %s", host.name, host.task or "-", host.reason)
        return ", ".join(h.name for h in self.failed) or "every host"


def _address(target: Target) -> str:
    if target.address:
        return target.address
    try:
        return socket.getaddrinfo(target.fqdn, None, type=socket.SOCK_STREAM)[0][4][0]
    except OSError:
        raise DeployError(f"{target.fqdn} does not resolve here: list it as '{target.fqdn} <address>'") from None


def inventory(targets: Sequence[Target], hosts_mode: bool) -> dict:
    """An inventory for our own host list; in Hosts mode each host's proxy may reach only its own address."""
    hosts: dict[str, dict] = {}
    for target in targets:
        values: dict = {"ansible_host": target.address} if target.address else {}
        if hosts_mode:
            values["ovirt_websocket_proxy_allowed_targets"] = [_address(target)]
        hosts[target.fqdn] = values
    return {GROUP: {"hosts": hosts}}


def _envvars(ssh: Ssh, control_dir: str) -> dict[str, str]:
    checking = "accept-new" if ssh.accept_new else "yes"
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir,
        "ANSIBLE_SSH_ARGS": (f"-o ControlMaster=auto -o ControlPersist=60s -o BatchMode=yes "
                             f"-o UserKnownHostsFile={ssh.known_hosts_file} -o StrictHostKeyChecking={checking}"),
        "ANSIBLE_REMOTE_USER": ssh.user,
        "ANSIBLE_REMOTE_PORT": str(ssh.port),
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_TIMEOUT": "10",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
    }
    if ssh.key:
        env["ANSIBLE_PRIVATE_KEY_FILE"] = ssh.key
    return env


def _progress_handler(progress: Progress) -> Callable[[dict], bool]:
    statuses = {"runner_on_ok": "ok", "runner_on_failed": "FAILED", "runner_on_unreachable": "UNREACHABLE"}

    def handle(event: dict) -> bool:
        kind = event.get("event")
        data = event.get("event_data", {})
        if kind in statuses and data.get("host") and data.get("task_action") not in QUIET_ACTIONS:
            res = data.get("res") or {}
            status = "changed" if kind == "runner_on_ok" and res.get("changed") else statuses[kind]
            if kind == "runner_on_failed" and data.get("ignore_errors"):
                status = "failed (ignored)"
            progress(f"{data['host']}: {data.get('task', '?')}: {status}")
        return True

    return handle


def _reason(res: dict) -> str:
    stderr = (res.get("stderr") or "").strip()
    text = stderr.splitlines()[-1] if stderr else str(res.get("msg") or "unknown reason")
    return " ".join(text.split())[:400]


def _results(runner, names: Sequence[str]) -> dict[str, HostResult]:  # type: ignore[no-untyped-def]
    stats = runner.stats or {}
    results = {}
    for name in names:
        failed = name in (stats.get("failures") or {}) or name in (stats.get("dark") or {})
        seen = name in (stats.get("ok") or {}) or failed
        result = HostResult(name, seen and not failed, (stats.get("changed") or {}).get(name, 0))
        if not result.ok:
            result.task, result.reason = None, f"the playbook did not run on it (rc {runner.rc}): see the log"
            for ev in reversed(list(runner.host_events(name))):
                data = ev.get("event_data", {})
                if ev.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                    result.task, result.reason = data.get("task"), _reason(data.get("res") or {})
                    break
        results[name] = result
    return results


def _close_masters(control_dir: str) -> None:
    for sock in Path(control_dir).iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "placeholder"], capture_output=True)
    shutil.rmtree(control_dir, ignore_errors=True)


def artifacts_dir(root: Root, log_file: Path | None, action: str) -> Path:
    """Where the runner's artifacts go: next to the setup log, named after it."""
    if log_file is not None:
        return log_file.with_name(log_file.stem + "-ansible")
    stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    return root.path(paths.LOG_DIR) / f"ovirt-engine-{action}-{stamp}-ansible"


def run_playbook(*, root: Root, targets: Sequence[Target] = (), inventory_file: Path | None = None,
                 ssh: Ssh = Ssh(), prefix: str = DEFAULT_PREFIX, port: int = paths.DEFAULT_PROXY_PORT,
                 forks: int = 10, hosts_mode: bool = False, state: str = "present", artifacts: Path,
                 progress: Progress = lambda line: None) -> DeployResult:
    """Run the playbook on our host list or an inventory file; the runner's artifacts go to `artifacts`."""
    import ansible_runner  # only when deploying: it costs start-up time

    values: dict[str, object] = {"state": state, "prefix": prefix, "port": port,
                                 "engine_pki": str(root.path(paths.PKI_DIR)), "engine_root": str(root.base),
                                 "engine_python": sys.executable}
    if state == "present":
        wheels = wheelhouse(root)
        values.update(wheelhouse_archive=str(wheels.archive), wheelhouse_id=wheels.id, wheel_python=wheels.python,
                      requirement=PACKAGE)
    extravars = {f"{ROLE_PREFIX}{name}": value for name, value in values.items()}
    if inventory_file is not None:
        inventory_arg: object = str(inventory_file.resolve())
        extravars["wsp_hosts"] = "all"
        extravars[f"{ROLE_PREFIX}own_address_only"] = hosts_mode
        names = _inventory_hosts(inventory_file)
    else:
        inventory_arg = inventory(targets, hosts_mode)
        names = [t.fqdn for t in targets]
    private = tempfile.mkdtemp(prefix="wsp-runner-")
    control_dir = tempfile.mkdtemp(prefix="wsp-cp-", dir="/tmp")  # ControlPath must stay under 108 bytes
    make_parents(artifacts / "x", 0o700)
    try:
        runner = ansible_runner.run(
            private_data_dir=private, playbook=str(resource_dir("ansible") / PLAYBOOK), inventory=inventory_arg,
            extravars=extravars, envvars=_envvars(ssh, control_dir), forks=forks, quiet=True,
            suppress_env_files=True, artifact_dir=str(artifacts.parent), ident=artifacts.name,
            event_handler=_progress_handler(progress), cancel_callback=lambda: False)
        for line in runner.stdout.read().splitlines():
            log.debug("ansible: %s", line)
        return DeployResult(runner.rc, _results(runner, names), artifacts)
    finally:
        _close_masters(control_dir)
        shutil.rmtree(private, ignore_errors=True)


def _inventory_hosts(inventory_file: Path) -> list[str]:
    """The host names an inventory file holds, as `ansible-inventory` lists them."""
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory_file),
                             "--list"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    if result.returncode != 0:
        raise DeployError(f"cannot read the inventory {inventory_file}: {result.stderr.strip()}")
    data = json.loads(result.stdout)
    names = sorted(data.get("_meta", {}).get("hostvars", {}).keys()
                   | {h for group in data.values() if isinstance(group, dict) for h in group.get("hosts", [])})
    if not names:
        raise DeployError(f"the inventory {inventory_file} names no host")
    return names


@dataclass
class Deployment:
    """What was deployed where: enough for re-runs, certificate renewal and cleanup to reach the hosts."""

    mode: str
    targets: list[Target]
    inventory: str | None
    ssh: Ssh
    prefix: str
    port: int
    forks: int
    status: dict[str, str] = field(default_factory=dict)  # host: "deployed" or "failed: <task>: <reason>"

    def run_arguments(self) -> dict:
        """The keyword arguments `deploy()` and `remove()` take for these hosts."""
        return {"targets": self.targets, "inventory_file": Path(self.inventory) if self.inventory else None,
                "ssh": self.ssh, "prefix": self.prefix, "port": self.port, "forks": self.forks,
                "hosts_mode": self.mode == "hosts"}


def save_record(root: Root, deployment: Deployment) -> None:
    """Write the record (0600); it is kept even when a run fails, so cleanup can reach every host."""
    target = root.path(paths.DEPLOY_RECORD)
    make_parents(target, 0o700)
    atomic_write(target, (json.dumps(asdict(deployment), indent=1) + "\n").encode(), 0o600)


def load_record(root: Root) -> Deployment | None:
    """The last recorded deployment below root, or None."""
    path = root.path(paths.DEPLOY_RECORD)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return Deployment(**{**data, "targets": [Target(**t) for t in data["targets"]], "ssh": Ssh(**data["ssh"])})


def deploy(**kwargs) -> DeployResult:  # type: ignore[no-untyped-def]
    """Install, configure, start and check the proxy on every target (see `run_playbook`)."""
    return run_playbook(state="present", **kwargs)


def remove(**kwargs) -> DeployResult:  # type: ignore[no-untyped-def]
    """Stop the proxy on every target and remove what `deploy` installed (see `run_playbook`)."""
    return run_playbook(state="absent", **kwargs)
