"""The WebSocket proxy on this host: the question, its config, unit and firewall files, the engine option,
and starting the service where setup owns the system."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

from ovsetup import names, options, paths
from ovsetup.core.environment import EnvKey
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import FileWrite
from ovsetup.render import render


def _port_problem(port: int) -> str | None:
    return None if 0 < port < 65536 else f"port {port} is out of range 1..65535"


def _enabled(plugin: Plugin) -> bool:
    return bool(plugin.env[names.WSP_CONFIG])


class WebSocketProxyPlugin(Plugin):
    KEYS = (
        EnvKey(names.WSP_CONFIG, "bool", answerfile=True, postinstall=True, summary="Configure WebSocket Proxy"),
        EnvKey(names.WSP_PORT, "int", default=paths.DEFAULT_PROXY_PORT, answerfile=True, postinstall=True,
               summary="WebSocket Proxy port", validator=_port_problem),
    )

    @event(Stage.CUSTOMIZATION, name=names.WSP_CUSTOMIZATION)
    def ask(self) -> None:
        if self.env[names.WSP_CONFIG] is None:
            answer = self.dialog.query_boolean(
                "OVESETUP_CONFIG_WEBSOCKET_PROXY", "Configure WebSocket Proxy on this host (@VALUES@) [@DEFAULT@]: ",
                env_key=names.WSP_CONFIG, default=True)
            self.env.supply(names.WSP_CONFIG, answer)
        if self.env[names.WSP_CONFIG]:
            self.env[names.PKI_REQUIRED] = True

    @event(Stage.EARLY_MISC, condition=lambda self: _enabled(self) and self.context.owns_system)
    def service_user(self) -> None:
        if shutil.which("getent") and subprocess.run(["getent", "passwd", paths.SERVICE_USER],
                                                     capture_output=True).returncode == 0:
            return
        self.log.info("Creating the %s user", paths.SERVICE_USER)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/sbin/nologin",
                        paths.SERVICE_USER], check=True, capture_output=True)

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
            executable=Path(sys.prefix) / "bin" / "ovirt-websocket-proxy"))
        self._write(paths.FIREWALLD_SERVICE, render("ovirt-websocket-proxy.xml.j2", proxy_port=port))
        store = options.open_store(self.context.root)
        self.transaction.append(store.update(options.WEBSOCKET_PROXY, f"{self.env[names.FQDN]}:{port}"))

    @event(Stage.CLOSEUP, condition=lambda self: _enabled(self) and self.context.owns_system
           and Path("/run/systemd/system").is_dir())
    def start(self) -> None:
        self.log.info("Starting %s", paths.SERVICE_NAME)
        for command in (["daemon-reload"], ["enable", paths.SERVICE_NAME], ["restart", paths.SERVICE_NAME]):
            subprocess.run(["systemctl", *command], check=True, capture_output=True)
        if shutil.which("firewall-cmd"):
            subprocess.run(["firewall-cmd", "--reload"], capture_output=True)
            subprocess.run(["firewall-cmd", "--permanent", "--add-service", paths.SERVICE_NAME],
                           capture_output=True)
            subprocess.run(["firewall-cmd", "--reload"], capture_output=True)

    @event(Stage.CLOSEUP, after=(names.SUMMARY_START,), before=(names.SUMMARY_END,), condition=_enabled)
    def summary(self) -> None:
        port = self.env[names.WSP_PORT]
        self.dialog.note(f"WebSocket Proxy: wss://{self.env[names.FQDN]}:{port}/ "
                         f"(certificate {paths.PROXY_CERT}, issued by {paths.CA_CERT})")
        if not (self.context.owns_system and Path("/run/systemd/system").is_dir()):
            root = "" if self.context.root.is_system else f" --root {self.context.root.base}"
            self.dialog.note(f"Start the proxy with: ovirt-websocket-proxy{root}")


PLUGINS = (WebSocketProxyPlugin,)
