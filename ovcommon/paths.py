"""Every file path this product reads or writes, in one table, and the `--root` re-rooting rule.

Paths in this module are the target system's absolute paths (what is written *inside* files).
`Root.path()` maps one below the `--root` directory for reading and writing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

PKI_DIR = PurePosixPath("/etc/pki/ovirt-engine")
CA_CERT = PKI_DIR / "ca.pem"
CA_KEY = PKI_DIR / "private" / "ca.pem"
ENGINE_CERT = PKI_DIR / "certs" / "engine.cer"
ENGINE_STORE = PKI_DIR / "keys" / "engine.p12"
PROXY_CERT = PKI_DIR / "certs" / "websocket-proxy.cer"
PROXY_KEY = PKI_DIR / "keys" / "websocket-proxy.key.nopass"
REQUESTS_DIR = PKI_DIR / "requests"
CA_SERIAL = PKI_DIR / "serial.txt"

ETC_DIR = PurePosixPath("/etc/ovirt-engine")
PROXY_CONFIG = ETC_DIR / "ovirt-websocket-proxy.conf"
PROXY_CONFIG_D = ETC_DIR / "ovirt-websocket-proxy.conf.d"
PROXY_SETUP_CONFIG = PROXY_CONFIG_D / "10-setup.conf"
ENGINE_CONF_D = ETC_DIR / "engine.conf.d"
# Holds ENGINE_PKI_ENGINE_STORE_PASSWORD (0600), as oVirt's 10-setup-pki.conf does.
ENGINE_PKI_CONFIG = ENGINE_CONF_D / "10-setup-pki.conf"
# Holds ENGINE_FQDN, as oVirt's 10-setup-protocols.conf does.
ENGINE_PROTOCOLS_CONFIG = ENGINE_CONF_D / "10-setup-protocols.conf"
ENGINE_DB_CONFIG = ENGINE_CONF_D / "10-setup-database.conf"
UNINSTALL_DIR = ETC_DIR / "uninstall.d"
SETUP_CONFIG = PurePosixPath("/etc/ovirt-engine-setup.conf")
SETUP_CONFIG_D = PurePosixPath("/etc/ovirt-engine-setup.conf.d")
POST_INSTALL_CONFIG = SETUP_CONFIG_D / "20-setup-ovirt-post.conf"
# The Ansible deployment's answers (read by every later run) and what was deployed where.
DEPLOY_CONFIG = SETUP_CONFIG_D / "20-setup-websocket-proxy-deploy.conf"
DEPLOY_RECORD = PurePosixPath("/var/lib/ovirt-engine/setup/websocket-proxy-deploy.json")

LOG_DIR = PurePosixPath("/var/log/ovirt-engine/setup")
ANSWERS_DIR = PurePosixPath("/var/lib/ovirt-engine/setup/answers")
OPTIONS_DB = PurePosixPath("/var/lib/ovirt-engine/engine-options.sqlite")

SYSTEMD_UNIT = PurePosixPath("/etc/systemd/system/ovirt-websocket-proxy.service")
FIREWALLD_SERVICE = PurePosixPath("/etc/firewalld/services/ovirt-websocket-proxy.xml")
SYSCONFIG = PurePosixPath("/etc/sysconfig/ovirt-websocket-proxy")
# A proxy started by hand with `--pidfile` here is told to reload (SIGHUP) when setup changes its files.
PIDFILE = PurePosixPath("/run/ovirt-websocket-proxy.pid")

SERVICE_NAME = "ovirt-websocket-proxy"
SERVICE_USER = "ovirt"
DEFAULT_PROXY_PORT = 6100


@dataclass(frozen=True)
class Root:
    """The `--root` directory under which every target-system path lies."""

    base: Path = Path("/")

    def path(self, target: PurePosixPath | str) -> Path:
        """The real location of a target-system absolute path."""
        relative = PurePosixPath(target).relative_to("/")
        return self.base / relative

    @property
    def is_system(self) -> bool:
        return self.base.resolve() == Path("/")
