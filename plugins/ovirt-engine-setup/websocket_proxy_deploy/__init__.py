"""The WebSocket proxy on other machines: one separate machine (Remote) or every hypervisor host (Hosts),
deployed with Ansible after this host's files are committed; the option changes only when every host passed.
Validation finds what the run needs and is missing (Ansible, a wheel for a target's Python, a file) before any
change; a failed deployment keeps its answers and record for the re-run that finishes the job."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ovcommon import paths
from ovsetup import deploy, fqdn, hosttool, names, options, pgstore, pki
from ovsetup.core.config import render_answer_file
from ovsetup.core.environment import EnvKey
from ovsetup.core.errors import IncompleteError, SetupError
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import Change, atomic_write, make_parents

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
               validator=_mode_problem,
               help="Where to deploy the proxy with Ansible when not on this host: None, Remote (one separate "
                    "machine) or Hosts (every hypervisor host); read case-insensitively. Asked, default None."),
        EnvKey(REMOTE_HOST, "str", answerfile=True, postinstall=True, summary="WebSocket Proxy machine",
               help="Remote mode: the machine's FQDN, optionally followed by its address. Asked."),
        EnvKey(HOSTS, "multi-str", answerfile=True, postinstall=True, summary="WebSocket Proxy hosts",
               help="Hosts mode: one host a line, `fqdn` or `fqdn address`. Asked unless an inventory is given."),
        EnvKey(INVENTORY, "str", answerfile=True, postinstall=True, summary="WebSocket Proxy inventory",
               help="An Ansible inventory file instead of the host list (Hosts mode: each host needs "
                    "ansible_host)."),
        EnvKey(SSH_USER, "str", default="root", answerfile=True, postinstall=True,
               help="The SSH login on the machines deployed to."),
        EnvKey(SSH_PORT, "port", default=22, answerfile=True, postinstall=True, validator=_positive,
               help="The SSH port of the machines deployed to."),
        EnvKey(SSH_KEY, "str", answerfile=True, postinstall=True,
               help="The SSH private key file; unset: SSH's own defaults."),
        EnvKey(SSH_KNOWN_HOSTS, "str", answerfile=True, postinstall=True,
               help="The known_hosts file the machines' host keys are checked against; unset: ~/.ssh/known_hosts."),
        EnvKey(SSH_ACCEPT_NEW, "bool", default=False, answerfile=True, postinstall=True,
               help="Accept (and record) unknown host keys; a changed host key is always refused."),
        EnvKey(FORKS, "int", default=10, answerfile=True, postinstall=True, validator=_positive,
               help="How many machines Ansible works on in parallel."),
        EnvKey(PREFIX, "str", default=deploy.DEFAULT_PREFIX, answerfile=True, postinstall=True,
               help="Where the proxy's virtualenv goes on the machines deployed to."),
        EnvKey(WHEELHOUSE, "str", answerfile=True, postinstall=True, summary="WebSocket Proxy wheel directory",
               help="A directory of wheels (e.g. made with pip download) the machines' virtualenv is built from, "
                    "with --no-index: nothing is fetched. Unset: the package index pip is configured with."),
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
        if self.context.dry_run:
            return  # probing the targets writes the wheelhouse cache and Ansible's artifacts below the root
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

    def _recorded_answers(self) -> bytes:
        return render_answer_file({k: self.env[k] for k in RECORDED if self.env[k] is not None}).encode()

    def _record_answers(self) -> None:
        """Kept even if the deployment fails: the next run reads them and finishes the job. Unchanged: not written."""
        target = self.context.root.path(paths.DEPLOY_CONFIG)
        data = self._recorded_answers()
        if target.is_file() and target.read_bytes() == data and target.stat().st_mode & 0o777 == 0o600:
            return
        make_parents(target)
        atomic_write(target, data, 0o600)

    def _planned(self) -> list[Change | str]:
        """For a dry run: the hosts, the files `deploy` writes itself, and the option it sets."""
        targets = ", ".join(t.fqdn for t in self._targets()) or f"the hosts of {self.env[INVENTORY]}"
        root = self.context.root
        config, record = root.path(paths.DEPLOY_CONFIG), root.path(paths.DEPLOY_RECORD)
        old = config.read_bytes() if config.is_file() else None
        planned: list[Change | str] = [f"deploy the WebSocket Proxy with Ansible ({_mode(self)}) to {targets}, "
                                       "then set WebSocketProxy if every host passed"]
        if old != self._recorded_answers():
            planned.append(Change(str(paths.DEPLOY_CONFIG), "create" if old is None else "change", 0o600, old,
                                  self._recorded_answers()))
        planned.append(Change(str(paths.DEPLOY_RECORD), "change" if record.is_file() else "create", 0o600,
                              summary="the deployment's record (each host's result)"))
        planned += self._signed_planned()
        if not any(root.path(deploy.WHEELHOUSE_DIR).glob("*.tar")):
            planned.append(Change(str(deploy.WHEELHOUSE_DIR / f"{deploy.PACKAGE}-*.tar"), "create", 0o644,
                                  summary="the wheels the hosts install the proxy from"))
        if self.context.log_file is None:
            planned.append(Change(str(paths.LOG_DIR / f"ovirt-engine-{self.context.action}-*-ansible/*"), "create",
                                  0o644, summary="Ansible's artifacts"))
        store = options.open_store(root, pgstore.from_keys(self.env))
        host = self._targets()[0].fqdn if _mode(self) == "remote" else "Host"
        planned += store.update(options.WEBSOCKET_PROXY, f"{host}:{self.env[names.WSP_PORT]}").plan()
        return planned

    def _signed_planned(self) -> list[Change]:
        """The engine signs a host's request when the engine's copy of its certificate is missing or due
        (the host decides by its own copy, which is the same unless someone changed one of them)."""
        planned = []
        for target in self._targets():
            name = hosttool.proxy_request(target.fqdn)
            copy = self.context.root.path(paths.PKI_DIR / "certs" / f"{name}.cer")
            if copy.is_file() and pki.renewal_problem(copy.read_bytes(), need_san=True) is None:
                continue
            files = ((paths.REQUESTS_DIR / f"{name}.req", "request"),
                     (paths.PKI_DIR / "certs" / f"{name}.cer", "certificate, signed by the engine CA"))
            for path, what in files:
                action = "change" if self.context.root.path(path).is_file() else "create"
                planned.append(Change(str(path), action, 0o644, summary=f"{target.fqdn}'s {what}"))
        return planned

    @event(Stage.CLOSEUP, before=(names.SUMMARY_START,), condition=lambda self: _mode(self) != "none",
           planned=_planned)
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
