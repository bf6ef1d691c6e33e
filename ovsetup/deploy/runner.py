"""The runner adapter: the shipped playbook through ansible-runner, one `DeployResult` per run.

`deploy()` first probes every target's python3 and prepares a wheelhouse for each Python found (see
`wheelhouse`), so a target that cannot be served stops the run before anything is installed anywhere.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ovcommon import paths
from ovcommon.paths import Root
from ovcommon.resources import resource_dir

from ..core.transaction import make_parents
from .hosts import GROUP, DeployError, Ssh, inventory, inventory_hosts
from .record import Deployment
from .wheelhouse import PROBE, TargetPython, Wheelhouse, wheelhouse_for

log = logging.getLogger(__name__)
PLAYBOOK = "websocket-proxy.yml"
ROLE_PREFIX = "ovirt_websocket_proxy_"  # the role's variables
Progress = Callable[[str], None]
QUIET_ACTIONS = {"ansible.builtin.include_tasks", "ansible.builtin.validate_argument_spec", "validate_argument_spec",
                 "ansible.builtin.set_fact", "ansible.builtin.meta", "ansible.builtin.assert"}


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

    @property
    def changed(self) -> int:
        return sum(host.changed for host in self.hosts.values())

    def report_failures(self, logger: logging.Logger) -> str:
        """Log each failed host with its task and reason; return their names for the one-line error."""
        for host in self.failed:
            logger.error("%s: %s: %s", host.name, host.task or "-", host.reason)
        return ", ".join(h.name for h in self.failed) or "every host"


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


def artifacts_dir(root: Root, log_file: Path | None, action: str) -> Path:
    """Where the runner's artifacts go: next to the setup log, named after it."""
    if log_file is not None:
        return log_file.with_name(log_file.stem + "-ansible")
    stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    return root.path(paths.LOG_DIR) / f"ovirt-engine-{action}-{stamp}-ansible"


@dataclass(frozen=True)
class _Run:
    """What every ansible-runner call of one deployment shares."""

    inventory: object
    pattern: str
    names: list[str]
    envvars: dict[str, str]
    forks: int
    artifacts: Path


@contextmanager
def _session(deployment: Deployment, artifacts: Path) -> Iterator[_Run]:
    """One SSH control directory for the probe and the playbook; the masters are closed at the end."""
    if deployment.inventory is not None:
        inventory_arg: object = str(Path(deployment.inventory).resolve())
        pattern, names = "all:!engine", inventory_hosts(Path(deployment.inventory))
    else:
        inventory_arg = inventory(deployment.targets, deployment.hosts_mode)
        pattern, names = GROUP, [t.fqdn for t in deployment.targets]
    control_dir = tempfile.mkdtemp(prefix="wsp-cp-", dir="/tmp")  # ControlPath must stay under 108 bytes
    make_parents(artifacts / "x", 0o700)
    try:
        yield _Run(inventory_arg, pattern, names, _envvars(deployment.ssh, control_dir), deployment.forks, artifacts)
    finally:
        close_masters(control_dir)


def close_masters(control_dir: str) -> None:
    """End the SSH control masters below control_dir, and remove it."""
    for sock in Path(control_dir).iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "placeholder"], capture_output=True)
    shutil.rmtree(control_dir, ignore_errors=True)


def _ansible(run: _Run, ident: str, **arguments: object):  # type: ignore[no-untyped-def]
    import ansible_runner  # only when deploying: it costs start-up time

    private = tempfile.mkdtemp(prefix="wsp-runner-")
    try:
        runner = ansible_runner.run(
            private_data_dir=private, inventory=run.inventory, envvars=run.envvars, forks=run.forks, quiet=True,
            suppress_env_files=True, artifact_dir=str(run.artifacts.parent), ident=ident,
            cancel_callback=lambda: False, **arguments)
        for line in runner.stdout.read().splitlines():
            log.debug("ansible: %s", line)
        return runner
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _probe(run: _Run, ident: str) -> dict[str, TargetPython]:
    """Each reachable target's python3; a host that does not answer is left to the playbook to report."""
    command = f"{{{{ {ROLE_PREFIX}python | default('/usr/bin/python3') }}}} -c {shlex.quote(PROBE)}"
    runner = _ansible(run, ident, host_pattern=run.pattern, module="ansible.builtin.raw",
                      module_args=command)
    found = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("host") in run.names:
            found[data["host"]] = TargetPython.parse((data.get("res") or {}).get("stdout", ""))
    return found


def prepare(deployment: Deployment, *, root: Root, artifacts: Path,
            progress: Progress = lambda line: None) -> list[Wheelhouse]:
    """Probe every target's python3 and prepare a wheelhouse for each Python found (cached below root);
    a DeployError names the Python and the hosts that cannot be served, before anything is installed.
    Before the admin's confirmation, so no host key is accepted here: an unknown host is probed later."""
    checking = replace(deployment, ssh=replace(deployment.ssh, accept_new=False))
    with _session(checking, artifacts) as run:
        return _prepare(deployment, root, run, run.artifacts.name + "-check", progress)


def _prepare(deployment: Deployment, root: Root, run: _Run, ident: str, progress: Progress) -> list[Wheelhouse]:
    found = _probe(run, ident)
    wheel_dir = Path(deployment.wheel_dir) if deployment.wheel_dir else None
    if not found:  # no host answered: the playbook reports why; the engine's own Python is the best guess
        return [wheelhouse_for(root, TargetPython.engine(), wheel_dir)]
    houses = []
    for python in sorted(set(found.values()), key=lambda p: (p.version, p.machine)):
        hosts = ", ".join(sorted(name for name, probed in found.items() if probed == python))
        progress(f"{hosts}: {python.label}")
        try:
            houses.append(wheelhouse_for(root, python, wheel_dir))
        except DeployError as exc:
            raise DeployError(f"{hosts}: {exc}") from None
    return houses


def _play(deployment: Deployment, run: _Run, root: Root, state: str, houses: list[Wheelhouse],
          progress: Progress) -> DeployResult:
    values: dict[str, object] = {
        "state": state, "prefix": deployment.prefix, "port": deployment.port,
        "engine_pki": str(root.path(paths.PKI_DIR)), "engine_root": str(root.base), "engine_python": sys.executable,
        "wheelhouses": [house.role_entry() for house in houses]}
    extravars = {f"{ROLE_PREFIX}{name}": value for name, value in values.items()}
    extravars["wsp_hosts"] = run.pattern
    if deployment.inventory is not None:
        extravars[f"{ROLE_PREFIX}own_address_only"] = deployment.hosts_mode
    runner = _ansible(run, run.artifacts.name, playbook=str(resource_dir("ansible") / PLAYBOOK),
                      extravars=extravars, event_handler=_progress_handler(progress))
    return DeployResult(runner.rc, _results(runner, run.names), run.artifacts)


def deploy(deployment: Deployment, *, root: Root, artifacts: Path,
           progress: Progress = lambda line: None) -> DeployResult:
    """Install, configure, start and check the proxy on every target; the runner's artifacts go to `artifacts`."""
    with _session(deployment, artifacts) as run:
        houses = _prepare(deployment, root, run, run.artifacts.name + "-probe", progress)
        return _play(deployment, run, root, "present", houses, progress)


def remove(deployment: Deployment, *, root: Root, artifacts: Path,
           progress: Progress = lambda line: None) -> DeployResult:
    """Stop the proxy on every target and remove what `deploy` installed."""
    with _session(deployment, artifacts) as run:
        return _play(deployment, run, root, "absent", [], progress)
