"""Certificate renewal: every run checks the CA, the engine's and every proxy's certificate; one that
expires within 60 days or lacks a subjectAltName brings the question `Renew certificates?`.

The CA and the engine keep their keys (a new engine key would break every deployed `engine.cer`, a new
CA key every browser that imported it); the local proxy gets a new key in `PKIPlugin.proxy_pair`.
Deployed proxies are renewed on the deployment's own path: every re-run runs the playbook, whose
`ovirt-websocket-proxy-host configure` makes a new key and CSR for a certificate that is due.
"""
from __future__ import annotations

from pathlib import PurePosixPath

from ovcommon import paths
from ovsetup import names, pki
from ovsetup.core.environment import EnvKey
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import FileWrite

STORE_PASSWORD = "OVESETUP_PKI/storePassword"


def _renewing(plugin: RenewPlugin) -> bool:
    return bool(plugin.env[names.PKI_RENEW] and plugin.due)


class RenewPlugin(Plugin):
    KEYS = (EnvKey(names.PKI_RENEW, "bool", answerfile=True,
                   help="Renew the certificates that expire within 60 days (or lack a subjectAltName). Asked "
                        "only then, default Yes; not kept for re-runs."),)
    due: dict[PurePosixPath, str] = {}  # target -> why it needs renewal

    @event(Stage.CUSTOMIZATION, after=(names.FQDN_CUSTOMIZATION,),
           condition=lambda self: self.context.root.path(paths.CA_CERT).is_file())
    def check(self) -> None:
        self.due = {c.target: c.problem for c in pki.check_certificates(self.context.root) if c.problem}
        if not self.due:
            return
        for target, problem in self.due.items():
            self.log.warning("Certificate %s %s", target, problem)
        if self.env[names.PKI_RENEW] is None:
            self.env.supply(names.PKI_RENEW, self.dialog.query_boolean(
                "OVESETUP_PKI_RENEW", "Renew certificates? (@VALUES@) [@DEFAULT@]: ",
                env_key=names.PKI_RENEW, default=True))

    def _write(self, target: PurePosixPath, content: bytes, mode: int = 0o644) -> None:
        self.transaction.append(FileWrite(self.context.root.path(target), content, mode=mode, group="ca_pki",
                                          target=str(target)))

    @event(Stage.MISC, name=names.PKI_RENEW_LOCAL, before=(names.PKI_AVAILABLE,), condition=_renewing)
    def renew(self) -> None:
        root = self.context.root
        authority = pki.load_authority(root.path(paths.CA_CERT), root.path(paths.CA_KEY))
        if paths.CA_CERT in self.due:
            self.log.info("Renewing the engine CA certificate (same key)")
            authority = pki.renew_authority(authority)
            self._write(paths.CA_CERT, pki.cert_pem(authority.cert))
        if paths.ENGINE_CERT in self.due and root.path(paths.ENGINE_STORE).is_file():
            self.log.info("Renewing the engine certificate (same key)")
            password = self.env[STORE_PASSWORD]
            key, old = pki.load_engine_store(root.path(paths.ENGINE_STORE).read_bytes(), password)
            cert = pki.issue(authority, key.public_key(), pki.common_name(old))
            self._write(paths.ENGINE_STORE, pki.engine_store(key, cert, authority.cert, password), mode=0o600)
            self._write(paths.ENGINE_CERT, pki.cert_pem(cert))

    @event(Stage.CLOSEUP, after=(names.SUMMARY_START,), before=(names.SUMMARY_END,),
           condition=lambda self: self.context.root.path(paths.CA_CERT).is_file())
    def summary(self) -> None:
        for checked in pki.check_certificates(self.context.root):
            state = f" ({checked.problem})" if checked.problem else ""
            self.dialog.note(f"Certificate {checked.label}: {checked.target} expires "
                             f"{checked.expires:%Y-%m-%d}{state}")
