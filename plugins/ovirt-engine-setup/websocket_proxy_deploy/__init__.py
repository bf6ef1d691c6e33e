"""The WebSocket proxy on other machines: one separate machine (Remote) or every hypervisor host (Hosts),
deployed with Ansible after this host's files are committed; the option changes only when every host passed.
Validation finds what the run needs and is missing (Ansible, a wheel for a target's Python, a file) before any
change; a failed deployment keeps its answers and record for the re-run that finishes the job."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ovcommon import paths
from ovsetup import deploy, fqdn, names, options, pgstore
from ovsetup.core.config import render_answer_file
from ovsetup.core.environment import EnvKey
from ovsetup.core.errors import IncompleteError, SetupError
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import atomic_write, make_parents

MODE = "OVESETUP_CONFIG/websocketProxyDeploy"
REMOTE_HOST = "OVESETUP_CONFIG/websocketProxyRemoteHost"
HOSTS = "OVESETUP_CONFIG/websocketProxyHosts"
INVENTORY = "OVESETUP_CONFIG/websocketProxyInventory"
SSH_USER = "OVESETUP_CONFIG/websocketProxySshUser"
SSH_PORT = "OVESETUP_CONFIG/websocketProxySshPort"
SSH_KEY = "OVESETUP_CONFIG/websocketProxySshKey"
SSH_KNOWN_HOSTS = "OVESETUP_CONFIG/websocketProxySshKnownHosts"
SSH_ACCEPT_NEW = "OVESETUP_CONFIG/websocketProxySshAcceptNewHostKeys"
FORKS = "OVESETUP_CONFIG/websocketProxyForks"
PREFIX = "OVESETUP_CONFIG/websocketProxyInstallPrefix"
WHEELHOUSE = deploy.WHEELHOUSE_KEY
RECORDED = (MODE, REMOTE_HOST, HOSTS, INVENTORY, SSH_USER, SSH_PORT, SSH_KEY, SSH_KNOWN_HOSTS, SSH_ACCEPT_NEW,
            FORKS, PREFIX, WHEELHOUSE)
REINSTALL = f"pip install --force-reinstall '{deploy.PACKAGE}'"


def _mode_problem(value: str) -> str | None:
    return None if value.lower() in deploy.MODES else f"{value!r} is not one of None, Remote, Hosts"


def _positive(value: int) -> str | None:
    return None if value > 0 else f"{value} is not a positive number"


def _mode(plugin: Plugin) -> str:
    return (plugin.env.get(MODE) or "none").lower()


class DeployPlugin(Plugin):
    KEYS = (
        EnvKey(MODE, "str", answerfile=True, postinstall=True, summary="Deploy WebSocket Proxy to",
               validator=_mode_problem),
        EnvKey(REMOTE_HOST, "str", answerfile=True, postinstall=True, summary="WebSocket Proxy machine"),
        EnvKey(HOSTS, "multi-str", answerfile=True, postinstall=True, summary="WebSocket Proxy hosts"),
        EnvKey(INVENTORY, "str", answerfile=True, postinstall=True, summary="WebSocket Proxy inventory"),
        EnvKey(SSH_USER, "str", default="root", answerfile=True, postinstall=True),
        EnvKey(SSH_PORT, "port", default=22, answerfile=True, postinstall=True, validator=_positive),
        EnvKey(SSH_KEY, "str", answerfile=True, postinstall=True),
        EnvKey(SSH_KNOWN_HOSTS, "str", answerfile=True, postinstall=True),
        EnvKey(SSH_ACCEPT_NEW, "bool", default=False, answerfile=True, postinstall=True),
        EnvKey(FORKS, "int", default=10, answerfile=True, postinstall=True, validator=_positive),
        EnvKey(PREFIX, "str", default=deploy.DEFAULT_PREFIX, answerfile=True, postinstall=True),
        EnvKey(WHEELHOUSE, "str", answerfile=True, postinstall=True, summary="WebSocket Proxy wheel directory"),
    )

    @event(Stage.CUSTOMIZATION, name=names.WSP_DEPLOY_CUSTOMIZATION, after=(names.WSP_CUSTOMIZATION,),
           condition=lambda self: self.env[names.WSP_CONFIG] is False)
    def ask(self) -> None:
        if self.env[MODE] is None:
            answer = self.dialog.query(
                "OVESETUP_CONFIG_WEBSOCKET_PROXY_DEPLOY",
                "Deploy the WebSocket Proxy to other machines? (@VALUES@) [@DEFAULT@]: ",
                env_key=MODE, valid=("None", "Remote", "Hosts"), case_sensitive=False, default="None")
            self.env.supply(MODE, answer.lower())
        self.env[MODE] = _mode(self)
        if _mode(self) == "remote" and self.env[REMOTE_HOST] is None:
            self.env.supply(REMOTE_HOST, self.dialog.query(
                "OVESETUP_CONFIG_WEBSOCKET_PROXY_REMOTE_HOST",
                "Fully qualified DNS name of the WebSocket Proxy machine: ", env_key=REMOTE_HOST))
        if _mode(self) == "hosts" and self.env[HOSTS] is None and self.env[INVENTORY] is None:
            answer = self.dialog.query(
                "OVESETUP_CONFIG_WEBSOCKET_PROXY_HOSTS",
                "Hypervisor hosts, comma-separated ('fqdn' or 'fqdn address' each): ", env_key=HOSTS)
            self.env.supply(HOSTS, [item.strip() for item in answer.split(",") if item.strip()])
        if _mode(self) != "none":
            self.env[names.PKI_REQUIRED] = True  # the engine CA signs every host's request

    def _targets(self) -> list[deploy.Target]:
        if _mode(self) == "remote":
            return deploy.parse_hosts([self.env[REMOTE_HOST] or ""])
        return deploy.parse_hosts(self.env[HOSTS] or []) if self.env[INVENTORY] is None else []

    @event(Stage.VALIDATION, condition=lambda self: _mode(self) != "none")
    def validate(self) -> None:
        problems = []
        try:
            targets = self._targets()
            if _mode(self) == "remote" and len(targets) != 1:
                problems.append(f"{REMOTE_HOST}: give one machine ('fqdn' or 'fqdn address')")
            problems += [f"{t.fqdn}: {p}" for t in targets for p in [fqdn.syntax_problem(t.fqdn)] if p]
            if _mode(self) == "hosts" and not targets and self.env[INVENTORY] is None:
                problems.append(f"no hosts: set {HOSTS} or {INVENTORY}")
        except deploy.DeployError as exc:
            problems.append(str(exc))
        files = [(INVENTORY, self.env[INVENTORY]), (SSH_KEY, self.env[SSH_KEY])]
        if not self.env[SSH_ACCEPT_NEW]:
            files.append((SSH_KNOWN_HOSTS, self._ssh().known_hosts_file))
        problems += [f"{key}: {value} does not exist" for key, value in files if value and not Path(value).is_file()]
        if self.env[WHEELHOUSE] and not Path(self.env[WHEELHOUSE]).is_dir():
            problems.append(f"{WHEELHOUSE}: {self.env[WHEELHOUSE]} is not a directory of wheels")
        problems += _missing_tools()
        if problems:
            raise SetupError("; ".join(problems))
        try:  # probes each target's python3 and prepares (or finds cached) the wheels for each Python found
            deploy.prepare(self._deployment(), root=self.context.root, progress=self.log.info,
                           artifacts=deploy.artifacts_dir(self.context.root, self.context.log_file, "check"))
        except deploy.DeployError as exc:
            raise SetupError(str(exc)) from None

    def _ssh(self) -> deploy.Ssh:
        return deploy.Ssh(user=self.env[SSH_USER], port=self.env[SSH_PORT], key=self.env[SSH_KEY],
                          known_hosts=self.env[SSH_KNOWN_HOSTS], accept_new=self.env[SSH_ACCEPT_NEW])

    def _deployment(self) -> deploy.Deployment:
        return deploy.Deployment(_mode(self), self._targets(), self.env[INVENTORY], self._ssh(), self.env[PREFIX],
                                 self.env[names.WSP_PORT], self.env[FORKS], self.env[WHEELHOUSE])

    def _record_answers(self) -> None:
        """Kept even if the deployment fails: the next run reads them and finishes the job. Unchanged: not written."""
        target = self.context.root.path(paths.DEPLOY_CONFIG)
        data = render_answer_file({k: self.env[k] for k in RECORDED if self.env[k] is not None}).encode()
        if target.is_file() and target.read_bytes() == data and target.stat().st_mode & 0o777 == 0o600:
            return
        make_parents(target)
        atomic_write(target, data, 0o600)

    @event(Stage.CLOSEUP, before=(names.SUMMARY_START,), condition=lambda self: _mode(self) != "none")
    def deploy(self) -> None:
        root = self.context.root
        record = self._deployment()
        previous = deploy.load_record(root)
        if previous is not None and previous.status and _same_hosts(previous, record):
            record.status = dict(previous.status)  # a no-change re-run leaves the record as it was
        self._record_answers()
        deploy.save_record(root, record)
        kept = f"kept {paths.DEPLOY_CONFIG} and {paths.DEPLOY_RECORD} for the re-run (engine-setup) that finishes it"
        self.log.info("Deploying the WebSocket Proxy with Ansible (%s)", _mode(self))
        artifacts = deploy.artifacts_dir(root, self.context.log_file, self.context.action)
        try:
            result = deploy.deploy(record, root=root, artifacts=artifacts, progress=self.log.info)
        except (deploy.DeployError, OSError, ImportError) as exc:  # after the records: they stay, and we say so
            raise IncompleteError(f"the WebSocket Proxy was not deployed: {exc}; {kept}") from None
        for host in result.hosts.values():
            record.status[host.name] = "deployed" if host.ok else f"failed: {host.task}: {host.reason}"
        deploy.save_record(root, record)
        store = options.open_store(root, pgstore.from_keys(self.env))
        old = store.get(options.WEBSOCKET_PROXY)
        if result.failed or not result.hosts:
            failed = result.report_failures(self.log)
            raise IncompleteError(f"the WebSocket Proxy was not deployed to {failed}; WebSocketProxy keeps its "
                                  f"value {old}; {kept}; the Ansible artifacts are in {result.artifacts}")
        value = f"{record.targets[0].fqdn if record.mode == 'remote' else 'Host'}:{self.env[names.WSP_PORT]}"
        if old != value:
            write = store.update(options.WEBSOCKET_PROXY, value)
            self.transaction.append(write)  # after MISC: prepared and committed at once, and in the uninstall manifest

    @event(Stage.CLOSEUP, after=(names.SUMMARY_START,), before=(names.SUMMARY_END,),
           condition=lambda self: _mode(self) != "none")
    def summary(self) -> None:
        record = deploy.load_record(self.context.root)
        hosts = ", ".join(sorted(record.status)) if record else ""
        self.dialog.note(f"WebSocket Proxy deployed to {hosts} (port {self.env[names.WSP_PORT]}, "
                         f"{self.env[PREFIX]}); recorded in {paths.DEPLOY_RECORD}")


def _same_hosts(previous: deploy.Deployment, record: deploy.Deployment) -> bool:
    return set(previous.status) == {t.fqdn for t in record.targets} or record.inventory is not None


def _missing_tools() -> list[str]:
    """What a deployment runs that this installation lacks, each with its fix."""
    problems = []
    if importlib.util.find_spec("ansible_runner") is None:
        problems.append(f"the Python module ansible_runner is missing: {REINSTALL}")
    for tool in ("ansible-playbook", "ansible-inventory"):
        if not (Path(sys.executable).parent / tool).is_file():
            problems.append(f"{tool} is missing next to {sys.executable}: {REINSTALL}")
    return problems


PLUGINS = (DeployPlugin,)
