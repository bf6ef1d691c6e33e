"""The engine PKI: reuse an existing CA and engine key, or create them; issue the proxy's pair.

Never overwrites an existing CA or engine key. A proxy pair that is valid (issued by this CA, names
this host, not expiring within 60 days) is kept untouched.
"""
from __future__ import annotations

from pathlib import PurePosixPath

from ovcommon import paths
from ovcommon.configfile import ConfigSyntaxError, load_files
from ovcommon.render import render
from ovsetup import names, pki
from ovsetup.core.environment import EnvKey
from ovsetup.core.errors import SetupError
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import FileWrite

from .renew import RenewPlugin

ORGANIZATION = "OVESETUP_PKI/organization"
COUNTRY = "OVESETUP_PKI/country"
STORE_PASSWORD = "OVESETUP_PKI/storePassword"
STORE_PASSWORD_SETTING = "ENGINE_PKI_ENGINE_STORE_PASSWORD"  # in 10-setup-pki.conf


def _country_problem(value: str) -> str | None:
    return None if len(value) == 2 and value.isalpha() else f"{value!r} is not a two-letter country code"


class PKIPlugin(Plugin):
    KEYS = (
        EnvKey(ORGANIZATION, "str", answerfile=True, postinstall=True,
               help="The organization in a new CA's and certificates' names; unset: the engine FQDN's domain "
                    "(or Test)."),
        EnvKey(COUNTRY, "str", default="US", answerfile=True, postinstall=True, validator=_country_problem,
               help="The two-letter country in a new CA's and certificates' names."),
        EnvKey(STORE_PASSWORD, "str", default="mypass", secret=True, answerfile=True,
               help="The password of a new engine key store keys/engine.p12 (oVirt's default mypass)."),
    )

    authority: pki.Authority

    @event(Stage.SETUP)
    def recorded_store_password(self) -> None:
        """A re-run uses the store password the first run recorded, unless the user gives one."""
        recorded = self.context.root.path(paths.ENGINE_PKI_CONFIG)
        if STORE_PASSWORD in self.env.user_keys or not recorded.is_file():
            return
        try:
            password = load_files([recorded]).get(STORE_PASSWORD_SETTING)
        except (OSError, ConfigSyntaxError) as exc:
            raise SetupError(f"cannot read {paths.ENGINE_PKI_CONFIG}: {exc}") from None
        if password:
            self.env[STORE_PASSWORD] = password

    def _write(self, target: PurePosixPath, content: bytes | str, mode: int = 0o644, group: str = "ca_pki",
               owner: str | None = None) -> None:
        dir_mode = 0o750 if target.parent.name == "private" else 0o755
        self.transaction.append(FileWrite(self.context.root.path(target), content, mode=mode, group=group,
                                          target=str(target), owner=owner, dir_mode=dir_mode))

    @event(Stage.MISC, name=names.PKI_AVAILABLE, condition=lambda self: self.env[names.PKI_REQUIRED])
    def make_authority(self) -> None:
        root = self.context.root
        engine_fqdn = self.env[names.ENGINE_FQDN]
        if root.path(paths.CA_CERT).exists():
            self.log.info("Using the existing engine CA %s", paths.CA_CERT)
            authority = pki.load_authority(root.path(paths.CA_CERT), root.path(paths.CA_KEY))
        else:
            self.log.info("Creating the engine CA")
            organization = self.env[ORGANIZATION] or _organization(engine_fqdn)
            authority = pki.create_authority(self.env[COUNTRY], organization, engine_fqdn)
            self._write(paths.CA_CERT, pki.cert_pem(authority.cert))
            self._write(paths.CA_KEY, pki.key_pem(authority.key), mode=0o600)
        self.authority = authority
        self._engine_identity(authority, engine_fqdn)
        self._write(paths.ENGINE_PROTOCOLS_CONFIG, render("10-setup-protocols.conf.j2", engine_fqdn=engine_fqdn),
                    group="core")

    def _engine_identity(self, authority: pki.Authority, engine_fqdn: str) -> None:
        root = self.context.root
        password = self.env[STORE_PASSWORD]
        store = root.path(paths.ENGINE_STORE)
        if store.exists():
            try:
                pki.load_engine_store(store.read_bytes(), password)
            except pki.PKIError as exc:
                raise SetupError(f"{exc}: set {STORE_PASSWORD} to the store's password") from None
            self.log.info("Using the existing engine key %s", paths.ENGINE_STORE)
        else:
            key = pki.generate_key()
            cert = pki.issue(authority, key.public_key(), engine_fqdn)
            self._write(paths.ENGINE_STORE, pki.engine_store(key, cert, authority.cert, password), mode=0o600)
            self._write(paths.ENGINE_CERT, pki.cert_pem(cert))
        if not root.path(paths.ENGINE_PKI_CONFIG).exists() or not store.exists():
            self._write(paths.ENGINE_PKI_CONFIG, render("10-setup-pki.conf.j2", store_password=password),
                        mode=0o600)

    @event(Stage.MISC, after=(names.PKI_AVAILABLE,), condition=lambda self: bool(self.env[names.WSP_CONFIG]))
    def proxy_pair(self) -> None:
        root = self.context.root
        fqdn = self.env[names.FQDN]
        authority = self.authority
        cert_file, key_file = root.path(paths.PROXY_CERT), root.path(paths.PROXY_KEY)
        owner = paths.SERVICE_USER if self.context.owns_system else None
        if cert_file.exists() and key_file.exists():
            problem = pki.certificate_problem(cert_file.read_bytes(), authority.cert, fqdn)
            declined = self.env[names.PKI_RENEW] is False and problem == pki.renewal_problem(cert_file.read_bytes())
            if (problem is None or declined) and pki.public_keys_match(cert_file.read_bytes(), key_file.read_bytes()):
                self.log.info("Keeping the WebSocket Proxy certificate %s", paths.PROXY_CERT)
                return
            self.log.info("Issuing a new WebSocket Proxy certificate: the current one %s",
                          problem or "does not match its key")
        key = pki.generate_key()
        cert = pki.issue(authority, key.public_key(), fqdn)
        self._write(paths.PROXY_KEY, pki.key_pem(key), mode=0o600, owner=owner)
        self._write(paths.PROXY_CERT, pki.cert_pem(cert))


def _organization(fqdn: str) -> str:
    """oVirt's default: the domain part of the FQDN, or `Test`."""
    _, _, domain = fqdn.partition(".")
    return domain or "Test"


PLUGINS = (PKIPlugin, RenewPlugin)
