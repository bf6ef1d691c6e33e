"""The WebSocket proxy on other machines: one separate machine (Remote) or every hypervisor host (Hosts),
deployed with Ansible after this host's files are committed; the option changes only when every host passed."""
from __future__ import annotations

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
RECORDED = (MODE, REMOTE_HOST, HOSTS, INVENTORY, SSH_USER, SSH_PORT, SSH_KEY, SSH_KNOWN_HOSTS, SSH_ACCEPT_NEW,
            FORKS, PREFIX)


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
        if problems:
            raise SetupError("; ".join(problems))

    def _ssh(self) -> deploy.Ssh:
        return deploy.Ssh(user=self.env[SSH_USER], port=self.env[SSH_PORT], key=self.env[SSH_KEY],
                          known_hosts=self.env[SSH_KNOWN_HOSTS], accept_new=self.env[SSH_ACCEPT_NEW])

    def _recorded_answers(self) -> bytes:
        return render_answer_file({k: self.env[k] for k in RECORDED if self.env[k] is not None}).encode()

    def _record_answers(self) -> None:
        """Kept even if the deployment fails: the next run reads them and finishes the job."""
        target = self.context.root.path(paths.DEPLOY_CONFIG)
        make_parents(target)
        atomic_write(target, self._recorded_answers(), 0o600)

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
        record = deploy.Deployment(_mode(self), self._targets(), self.env[INVENTORY], self._ssh(), self.env[PREFIX],
                                   self.env[names.WSP_PORT], self.env[FORKS])
        self._record_answers()
        deploy.save_record(root, record)
        self.log.info("Deploying the WebSocket Proxy with Ansible (%s)", _mode(self))
        artifacts = deploy.artifacts_dir(root, self.context.log_file, self.context.action)
        result = deploy.deploy(root=root, artifacts=artifacts, progress=self.log.info,
                               **record.run_arguments())
        for host in result.hosts.values():
            record.status[host.name] = "deployed" if host.ok else f"failed: {host.task}: {host.reason}"
        deploy.save_record(root, record)
        store = options.open_store(root, pgstore.from_keys(self.env))
        old = store.get(options.WEBSOCKET_PROXY)
        if result.failed or not result.hosts:
            failed = result.report_failures(self.log)
            raise IncompleteError(f"the WebSocket Proxy was not deployed to {failed}; WebSocketProxy keeps its "
                                  f"value {old}; the Ansible artifacts are in {result.artifacts}")
        host = record.targets[0].fqdn if record.mode == "remote" else "Host"
        write = store.update(options.WEBSOCKET_PROXY, f"{host}:{self.env[names.WSP_PORT]}")
        write.prepare()
        write.commit()

    @event(Stage.CLOSEUP, after=(names.SUMMARY_START,), before=(names.SUMMARY_END,),
           condition=lambda self: _mode(self) != "none")
    def summary(self) -> None:
        record = deploy.load_record(self.context.root)
        hosts = ", ".join(sorted(record.status)) if record else ""
        self.dialog.note(f"WebSocket Proxy deployed to {hosts} (port {self.env[names.WSP_PORT]}, "
                         f"{self.env[PREFIX]}); recorded in {paths.DEPLOY_RECORD}")


PLUGINS = (DeployPlugin,)
