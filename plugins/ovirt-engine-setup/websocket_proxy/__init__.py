"""The WebSocket proxy on this host: the question, its config, unit and firewall files, the engine option,
and starting the service where setup owns the system."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path, PurePosixPath

from cryptography import x509

from ovcommon import configfile, paths
from ovcommon.render import render
from ovsetup import fqdn, names, options, pgstore, pki, service
from ovsetup.core.environment import EnvKey
from ovsetup.core.errors import SetupError
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import FileWrite

# What the running proxy reads: a change reloads it (SIGHUP; `service.choose_step` for the whole rule).
PROXY_READS = (paths.PROXY_SETUP_CONFIG, paths.PROXY_CERT, paths.PROXY_KEY, paths.ENGINE_CERT, paths.CA_CERT)
# ...and its unit: without systemd, a change to any of them sends SIGHUP to a proxy started with --pidfile.
PROXY_FILES = (*PROXY_READS, paths.SYSTEMD_UNIT)


def _enabled(plugin: Plugin) -> bool:
    return bool(plugin.env[names.WSP_CONFIG])


def _systemd(plugin: Plugin) -> bool:
    return service.setup_manages_service(plugin.context.owns_system)


class WebSocketProxyPlugin(Plugin):
    reloaded: int | None = None  # the pid told to reload
    firewall = ""  # "running" or "not running" once setup started the service
    opened: list[str] = []  # the zones this run opened the port in
    KEYS = (
        EnvKey(names.WSP_CONFIG, "bool", answerfile=True, postinstall=True, summary="Configure WebSocket Proxy",
               help="Configure the WebSocket proxy on this host. Asked, default Yes; No asks "
                    "OVESETUP_CONFIG/websocketProxyDeploy."),
        EnvKey(names.WSP_PORT, "int", default=paths.DEFAULT_PROXY_PORT, answerfile=True, postinstall=True,
               summary="WebSocket Proxy port", validator=fqdn.port_problem,
               help="The port the proxy listens on (TLS), here or on the machines it is deployed to."),
    )

    @event(Stage.SETUP)
    def detect_installed(self) -> None:
        """An installation made without a post-install file (an upgrade): take its answers from its files."""
        root = self.context.root
        config = root.path(paths.PROXY_SETUP_CONFIG)
        if self.env[names.WSP_CONFIG] is not None or not config.is_file():
            return
        self.env[names.WSP_CONFIG] = True
        installed = configfile.load_files([config])
        if names.WSP_PORT not in self.env.user_keys and installed.get("PROXY_PORT", "").isdigit():
            self.env[names.WSP_PORT] = int(installed["PROXY_PORT"])
        if self.env[names.FQDN] is None and root.path(paths.PROXY_CERT).is_file():
            self.env[names.FQDN] = pki.common_name(x509.load_pem_x509_certificate(
                root.path(paths.PROXY_CERT).read_bytes())) or None

    @event(Stage.CUSTOMIZATION, name=names.WSP_CUSTOMIZATION)
    def ask(self) -> None:
        if self.env[names.WSP_CONFIG] is None:
            answer = self.dialog.query_boolean(
                "OVESETUP_CONFIG_WEBSOCKET_PROXY", "Configure WebSocket Proxy on this host (@VALUES@) [@DEFAULT@]: ",
                env_key=names.WSP_CONFIG, default=True)
            self.env.supply(names.WSP_CONFIG, answer)
        if self.env[names.WSP_CONFIG]:
            self.env[names.PKI_REQUIRED] = True

    @event(Stage.VALIDATION, condition=lambda self: _enabled(self) and _systemd(self))
    def check_executable(self) -> None:
        problem = service.executable_problem(Path(sys.prefix) / "bin" / "ovirt-websocket-proxy")
        if problem:
            raise SetupError(f"the proxy cannot run as a service: {problem}")

    @event(Stage.EARLY_MISC, condition=lambda self: _enabled(self) and self.context.owns_system,
           planned=lambda self: [] if service.user_exists(paths.SERVICE_USER)
           else [f"create the system user {paths.SERVICE_USER}"])
    def service_user(self) -> None:
        """Made in the transaction (a failed run removes it) and recorded, so that cleanup removes it."""
        if service.user_exists(paths.SERVICE_USER):
            return
        self.log.info("Creating the %s user", paths.SERVICE_USER)
        self.transaction.append(service.ServiceUser(paths.SERVICE_USER, paths.SERVICE_NAME))
        self._write(service.CREATED_USER_RECORD, paths.SERVICE_USER + "\n")

    def _write(self, target: PurePosixPath, content: str) -> None:
        self.transaction.append(FileWrite(self.context.root.path(target), content, target=str(target)))

    @event(Stage.MISC, after=(names.PKI_AVAILABLE,), condition=_enabled)
    def configure(self) -> None:
        self.log.info("Configuring WebSocket Proxy")
        port = self.env[names.WSP_PORT]
        self._write(paths.PROXY_SETUP_CONFIG, render(
            "10-setup.conf.j2", port=port, ssl_certificate=paths.PROXY_CERT, ssl_key=paths.PROXY_KEY,
            cert_for_data_verification=paths.ENGINE_CERT))
        self._write(paths.SYSTEMD_UNIT, render(
            "ovirt-websocket-proxy.service.j2", user=paths.SERVICE_USER, sysconfig=paths.SYSCONFIG,
            executable=Path(sys.prefix) / "bin" / "ovirt-websocket-proxy", proxy_port=port))
        self._write(paths.FIREWALLD_SERVICE, render("ovirt-websocket-proxy.xml.j2", proxy_port=port))
        store = options.open_store(self.context.root, pgstore.from_keys(self.env))
        self.transaction.append(store.update(options.WEBSOCKET_PROXY, f"{self.env[names.FQDN]}:{port}"))

    def _changed(self, *targets: PurePosixPath) -> bool:
        """Whether this run changed any of these files."""
        wanted = {str(t) for t in targets}
        return any(isinstance(el, FileWrite) and el.changed and el.target in wanted for el in self.transaction.elements)

    def _port_changed(self) -> bool:
        """Whether the PROXY_PORT this run writes differs from the one in the file it replaces (which the
        running proxy was started with)."""
        for el in self.transaction.elements:
            if isinstance(el, FileWrite) and el.target == str(paths.PROXY_SETUP_CONFIG) and el.changed:
                before = el.original.content if el.original is not None else None
                return service.proxy_port(before) != service.proxy_port(el.content)
        return False

    def _step(self) -> tuple[service.Step, str]:
        """What this run does to the unit (the gentlest step that is enough), and why."""
        return service.choose_step(service.unit_state(paths.SERVICE_NAME), service.installed_version(),
                                   port_changed=self._port_changed(), files_changed=self._changed(*PROXY_READS))

    def _service_plan(self) -> list[str]:
        """What `start` would run, for a dry run."""
        step, why = self._step()
        name = paths.SERVICE_NAME
        lines = ["run systemctl daemon-reload"] if self._changed(paths.SYSTEMD_UNIT) else []
        lines.append(f"enable the service {name}")
        lines += {
            service.Step.START: [f"start the service {name}: {why}"],
            service.Step.RESTART: [f"restart the service {name}: {why}"],
            service.Step.HAND_OVER: [f"hand over to the new version {service.installed_version()} (SIGUSR2 to the "
                                     f"main process of {name}; a restart if none has taken over within "
                                     f"{service.HAND_OVER_TIMEOUT:.0f} s): {why}"],
            service.Step.RELOAD: [f"reload the service {name}: {why}"],
        }.get(step, [])
        if service.firewalld_running():
            lines.append(f"add the firewalld service {name} to every active zone where it is missing")
        return lines

    def _reload_plan(self) -> list[str]:
        pid = service.running_proxy(self.context.root.path(paths.PIDFILE)) if self._changed(*PROXY_FILES) else None
        return [] if pid is None else [f"tell the running proxy (pid {pid}) to reload its configuration (SIGHUP)"]

    @event(Stage.CLOSEUP, before=(names.SUMMARY_START,), condition=lambda self: _enabled(self) and _systemd(self),
           planned=_service_plan)
    def start(self) -> None:
        step, why = self._step()
        if self._changed(paths.SYSTEMD_UNIT):
            service.run(["systemctl", "daemon-reload"])
            if step in (service.Step.HAND_OVER, service.Step.RELOAD, service.Step.NOTHING):
                self.log.info("The unit file of %s changed: systemd re-read it; its new settings apply from the "
                              "next start", paths.SERVICE_NAME)
        service.run(["systemctl", "enable", paths.SERVICE_NAME])
        self._apply(step, why)
        if service.firewalld_running():
            self.opened = service.open_service(paths.SERVICE_NAME, reload=self._changed(paths.FIREWALLD_SERVICE))
            self.firewall = "running"
        else:
            self.firewall = "not running"

    def _apply(self, step: service.Step, why: str) -> None:
        """Take the step on the unit, logging it with its reason."""
        name = paths.SERVICE_NAME
        if step is service.Step.START:
            self.log.info("Starting %s: %s", name, why)
            service.run(["systemctl", "restart", name])
        elif step is service.Step.RESTART:
            self.log.info("Restarting %s: %s", name, why)
            service.run(["systemctl", "restart", name])
        elif step is service.Step.RELOAD:
            self.log.info("Reloading %s: %s", name, why)
            service.run(["systemctl", "reload", name])
        elif step is service.Step.HAND_OVER:
            version = service.installed_version()
            self.log.info("Handing %s over to version %s: %s", name, version, why)
            self.log.info("Waiting up to %.0f s for version %s to take over", service.HAND_OVER_TIMEOUT, version)
            problem = service.hand_over(name, version)
            if problem:
                self.log.warning("The hand-over to version %s failed (%s): restarting %s instead; open consoles "
                                 "are closed", version, problem, name)
                service.run(["systemctl", "restart", name])
        else:
            self.log.info("Leaving %s running as it is: %s", name, why)

    @event(Stage.CLOSEUP, before=(names.SUMMARY_START,),
           condition=lambda self: _enabled(self) and not _systemd(self), planned=_reload_plan)
    def reload_running(self) -> None:
        """A proxy started by hand with `--pidfile <root>/run/ovirt-websocket-proxy.pid` rereads its files."""
        if not self._changed(*PROXY_FILES):
            return
        pid = service.running_proxy(self.context.root.path(paths.PIDFILE))
        if pid is None:
            return
        os.kill(pid, signal.SIGHUP)
        self.reloaded = pid
        self.log.info("Told the running proxy (pid %d) to reload its configuration", pid)

    @event(Stage.CLOSEUP, after=(names.SUMMARY_START,), before=(names.SUMMARY_END,), condition=_enabled)
    def summary(self) -> None:
        port = self.env[names.WSP_PORT]
        self.dialog.note(f"WebSocket Proxy: wss://{self.env[names.FQDN]}:{port}/ "
                         f"(certificate {paths.PROXY_CERT}, issued by {paths.CA_CERT})")
        if self.firewall == "not running":
            self.dialog.note(f"firewalld is not running: port {port}/tcp was not opened (to open it when it runs: "
                             f"firewall-cmd --permanent --add-service {paths.SERVICE_NAME} && firewall-cmd --reload)")
        elif self.opened:
            self.dialog.note(f"Firewall: port {port}/tcp opened in the zones {', '.join(self.opened)}")
        if not _systemd(self) and self.reloaded is None:
            root = "" if self.context.root.is_system else f" --root {self.context.root.base}"
            self.dialog.note(f"Start (or restart) the proxy with: ovirt-websocket-proxy{root}")


PLUGINS = (WebSocketProxyPlugin,)
