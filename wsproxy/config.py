"""The proxy's typed configuration: defaults file, main file, `conf.d/*.conf`, checked once.

A bad value raises `ConfigError` naming the key; unknown keys are returned as warnings.
"""
from __future__ import annotations

import ipaddress
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ovcommon.configfile import ConfigSyntaxError, conf_d_files, load_files, parse_bool
from ovcommon.errors import Error
from ovcommon.paths import PROXY_CONFIG, PROXY_CONFIG_D, Root

DEFAULTS_FILE = Path(__file__).with_name("defaults.conf")
NOVNC_CANDIDATES = ("/usr/share/novnc", "/usr/local/share/novnc")

OVIRT_KEYS = frozenset({
    "PACKAGE_NAME", "PACKAGE_VERSION", "PACKAGE_DISPLAY_VERSION", "PROXY_HOST", "PROXY_PORT",
    "SOURCE_IS_IPV6", "SSL_CERTIFICATE", "SSL_KEY", "SSL_MIN_VERSION", "SSL_CIPHERS",
    "CERT_FOR_DATA_VERIFICATION", "SSL_ONLY", "TRACE_ENABLE", "TRACE_FILE", "ENGINE_USR",
})
OUR_KEYS = frozenset({
    "TICKET_CLOCK_SKEW", "ALLOWED_TARGETS", "ALLOWED_TARGET_PORTS", "ALLOWED_ORIGINS",
    "CONSOLE_PARENT_ORIGINS", "NOVNC_DIR", "MAX_SESSIONS", "IDLE_TIMEOUT", "METRICS",
    "MAX_FRAME_SIZE", "MAX_SESSION_BUFFER", "HANDSHAKE_TIMEOUT", "MAX_HANDSHAKES",
    "VNC_TLS_CA", "VNC_TLS_VERIFY_NAME", "VNC_TLS_CLIENT_CERT", "VNC_TLS_CLIENT_KEY", "WORKERS", "DRAIN_TIMEOUT",
})
MAX_WORKERS = 64
AUTO_WORKERS = 4  # `auto`: the cores this process may run on, at most this many
KNOWN_KEYS = OVIRT_KEYS | OUR_KEYS
TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Error):
    """A configuration problem, printed as one line naming the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


@dataclass(frozen=True)
class ProxyConfig:
    """Every setting the daemon uses, already parsed and checked."""

    host: str | None
    port: int
    ssl_only: bool
    ssl_certificate: Path | None
    ssl_key: Path | None
    ssl_min_version: ssl.TLSVersion
    ssl_ciphers: str | None
    engine_cert_path: Path
    engine_cert: x509.Certificate
    clock_skew: int
    allowed_targets: tuple[Network, ...]
    allowed_ports: tuple[tuple[int, int], ...]
    allowed_origins: tuple[str, ...]
    console_parent_origins: tuple[str, ...]
    novnc_dir: Path | None
    max_sessions: int
    idle_timeout: float
    max_frame_size: int
    max_session_buffer: int
    handshake_timeout: float
    max_handshakes: int
    metrics: Literal["off", "loopback", "any"]
    vnc_tls_ca: Path
    vnc_tls_verify_name: bool
    vnc_tls_client_cert: Path | None
    vnc_tls_client_key: Path | None
    workers: int
    drain_timeout: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def tls_enabled(self) -> bool:
        return self.ssl_certificate is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The listening TLS context, or None when serving plain ws:// only."""
        if self.ssl_certificate is None or self.ssl_key is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.ssl_min_version
        if self.ssl_ciphers:
            try:
                ctx.set_ciphers(self.ssl_ciphers)
            except (ssl.SSLError, ValueError) as exc:
                raise ConfigError("SSL_CIPHERS", f"not accepted by OpenSSL: {exc}") from None
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        try:
            ctx.load_cert_chain(self.ssl_certificate, self.ssl_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("SSL_KEY", f"cannot load {self.ssl_certificate} with {self.ssl_key}: {exc}") from None
        return ctx

    def vnc_tls_context(self) -> ssl.SSLContext:
        """TLS toward a VeNCrypt VNC server: its chain must lead to VNC_TLS_CA, and (VNC_TLS_VERIFY_NAME)
        its certificate must name the ticket's host."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.vnc_tls_verify_name
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cafile=self.vnc_tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("VNC_TLS_CA", f"cannot load CA certificates from {self.vnc_tls_ca}: {exc}") from None
        if self.vnc_tls_client_cert is not None and self.vnc_tls_client_key is not None:
            try:
                ctx.load_cert_chain(self.vnc_tls_client_cert, self.vnc_tls_client_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("VNC_TLS_CLIENT_KEY", f"cannot load {self.vnc_tls_client_cert} with "
                                  f"{self.vnc_tls_client_key}: {exc}") from None
        return ctx

    def target_allowed(self, address: str, port: int) -> bool:
        """Whether a resolved target address and port pass ALLOWED_TARGETS/ALLOWED_TARGET_PORTS."""
        if self.allowed_ports and not any(lo <= port <= hi for lo, hi in self.allowed_ports):
            return False
        if not self.allowed_targets:
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.allowed_targets)


def config_files(root: Root) -> list[Path]:
    """Defaults, then the main file, then `conf.d/*.conf` sorted."""
    return [DEFAULTS_FILE, root.path(PROXY_CONFIG), *conf_d_files(root.path(PROXY_CONFIG_D))]


def load(root: Root | None = None) -> ProxyConfig:
    """Read and check the whole configuration below `root` (default `/`)."""
    root = root or Root()
    sources: dict[str, str] = {}
    try:
        raw = load_files(config_files(root), sources)
    except ConfigSyntaxError as exc:
        raise ConfigError(exc.key, str(exc)) from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read: {exc}") from None
    try:
        return from_values(raw, root)
    except ConfigError as exc:
        if exc.key not in sources:
            raise
        raise ConfigError(exc.key, f"{exc.message} (set in {sources[exc.key]})") from None


def _digits(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes '²', which `int` refuses), and not absurdly many."""
    return re.fullmatch(r"[0-9]{1,12}", text) is not None


def _int(raw: dict[str, str], key: str, lo: int, hi: int) -> int:
    text = raw.get(key, "").strip()
    if not _digits(text):
        raise ConfigError(key, f"not a whole number: {text[:40]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise ConfigError(key, f"{value} is outside {lo}..{hi}")
    return value


def _bool(raw: dict[str, str], key: str, empty: bool = False) -> bool:
    """oVirt's boolean; a missing or empty value means `empty`."""
    text = raw.get(key, "")
    if not text.strip():
        return empty
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def _list(raw: dict[str, str], key: str) -> list[str]:
    return [item.strip() for item in raw.get(key, "").split(",") if item.strip()]


def _file(raw: dict[str, str], key: str, root: Root) -> Path | None:
    text = raw.get(key, "").strip()
    if not text:
        return None
    return root.path(text) if text.startswith("/") else Path(text)


def _networks(raw: dict[str, str]) -> tuple[Network, ...]:
    nets = []
    for item in _list(raw, "ALLOWED_TARGETS"):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError("ALLOWED_TARGETS", f"not a network: {item!r}") from None
    return tuple(nets)


def _ports(raw: dict[str, str]) -> tuple[tuple[int, int], ...]:
    ranges = []
    for item in _list(raw, "ALLOWED_TARGET_PORTS"):
        lo_s, _, hi_s = item.partition("-")
        if not _digits(lo_s.strip()) or (hi_s and not _digits(hi_s.strip())):
            raise ConfigError("ALLOWED_TARGET_PORTS", f"not a port or range: {item!r}")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if not 1 <= lo <= hi <= 65535:
            raise ConfigError("ALLOWED_TARGET_PORTS", f"not a valid range: {item!r}")
        ranges.append((lo, hi))
    return tuple(ranges)


def _origins(raw: dict[str, str], key: str) -> tuple[str, ...]:
    origins = []
    for item in _list(raw, key):
        if item != "*" and not (item.startswith(("https://", "http://")) and "/" not in item.split("://", 1)[1]):
            raise ConfigError(key, f"not an origin (scheme://host[:port]) or *: {item!r}")
        origins.append(item.lower().rstrip("/"))
    return tuple(origins)


def _novnc(raw: dict[str, str], root: Root) -> Path | None:
    """noVNC is installed software, not configuration: look below --root first, then on this system."""
    text = raw.get("NOVNC_DIR", "").strip()
    candidates = [text] if text else list(NOVNC_CANDIDATES)
    for candidate in candidates:
        for path in dict.fromkeys((root.path(candidate) if candidate.startswith("/") else Path(candidate),
                                   Path(candidate))):
            if (path / "core" / "rfb.js").is_file():
                return path
    if text:
        raise ConfigError("NOVNC_DIR", f"{text} has no core/rfb.js")
    return None


def _workers(raw: dict[str, str]) -> int:
    if raw.get("WORKERS", "").strip().lower() in ("auto", ""):
        return max(1, min(AUTO_WORKERS, len(os.sched_getaffinity(0))))
    return _int(raw, "WORKERS", 1, MAX_WORKERS)


def from_values(raw: dict[str, str], root: Root | None = None) -> ProxyConfig:
    """Check parsed `KEY=value` pairs and build the typed configuration."""
    root = root or Root()
    warnings = tuple(f"{key}: unknown key, ignored" for key in sorted(set(raw) - KNOWN_KEYS))
    host = raw.get("PROXY_HOST", "*").strip()
    ssl_only = _bool(raw, "SSL_ONLY")
    _bool(raw, "SOURCE_IS_IPV6")
    _bool(raw, "TRACE_ENABLE")
    cert = _file(raw, "SSL_CERTIFICATE", root)
    key = _file(raw, "SSL_KEY", root)
    for name, path in (("SSL_CERTIFICATE", cert), ("SSL_KEY", key)):
        if path is not None and not path.is_file():
            raise ConfigError(name, f"file not found: {path}")
        if path is None and ssl_only:
            raise ConfigError(name, "SSL_ONLY is set but no file is configured")
    if (cert is None) != (key is None):
        raise ConfigError("SSL_KEY" if key is None else "SSL_CERTIFICATE", "SSL_CERTIFICATE and SSL_KEY go together")
    version = raw.get("SSL_MIN_VERSION", "TLSv1.2").strip()
    if version not in TLS_VERSIONS:
        raise ConfigError("SSL_MIN_VERSION", f"{version!r} is not one of {', '.join(TLS_VERSIONS)}")
    engine_cert_path = _file(raw, "CERT_FOR_DATA_VERIFICATION", root)
    if engine_cert_path is None:
        raise ConfigError("CERT_FOR_DATA_VERIFICATION", "not set: tickets cannot be verified")
    try:
        engine_cert = x509.load_pem_x509_certificate(engine_cert_path.read_bytes())
        rsa_key = isinstance(engine_cert.public_key(), rsa.RSAPublicKey)
    except (OSError, ValueError) as exc:
        raise ConfigError("CERT_FOR_DATA_VERIFICATION",
                          f"cannot read a PEM certificate from {engine_cert_path}: {exc}") from None
    if not rsa_key:
        raise ConfigError("CERT_FOR_DATA_VERIFICATION", f"{engine_cert_path} does not hold an RSA key")
    metrics = raw.get("METRICS", "loopback").strip().lower()
    if metrics not in ("off", "loopback", "any"):
        raise ConfigError("METRICS", f"{metrics!r} is not one of off, loopback, any")
    client_cert = _file(raw, "VNC_TLS_CLIENT_CERT", root)
    client_key = _file(raw, "VNC_TLS_CLIENT_KEY", root)
    if (client_cert is None) != (client_key is None):
        raise ConfigError("VNC_TLS_CLIENT_KEY" if client_key is None else "VNC_TLS_CLIENT_CERT",
                          "VNC_TLS_CLIENT_CERT and VNC_TLS_CLIENT_KEY go together")
    vnc_ca = _file(raw, "VNC_TLS_CA", root)
    if vnc_ca is None:
        raise ConfigError("VNC_TLS_CA", "not set: VeNCrypt VNC servers cannot be verified")
    config = ProxyConfig(
        host=None if host in ("*", "") else host,
        port=_int(raw, "PROXY_PORT", 0, 65535),
        ssl_only=ssl_only,
        ssl_certificate=cert,
        ssl_key=key,
        ssl_min_version=TLS_VERSIONS[version],
        ssl_ciphers=raw.get("SSL_CIPHERS", "").strip() or None,
        engine_cert_path=engine_cert_path,
        engine_cert=engine_cert,
        clock_skew=_int(raw, "TICKET_CLOCK_SKEW", 0, 3600),
        allowed_targets=_networks(raw),
        allowed_ports=_ports(raw),
        allowed_origins=_origins(raw, "ALLOWED_ORIGINS"),
        console_parent_origins=_origins(raw, "CONSOLE_PARENT_ORIGINS"),
        novnc_dir=_novnc(raw, root),
        max_sessions=_int(raw, "MAX_SESSIONS", 1, 1_000_000),
        idle_timeout=float(_int(raw, "IDLE_TIMEOUT", 0, 7 * 86400)),
        max_frame_size=_int(raw, "MAX_FRAME_SIZE", 1024, 64 * 1024 * 1024),
        max_session_buffer=_int(raw, "MAX_SESSION_BUFFER", 16 * 1024, 64 * 1024 * 1024),
        handshake_timeout=float(_int(raw, "HANDSHAKE_TIMEOUT", 1, 3600)),
        max_handshakes=_int(raw, "MAX_HANDSHAKES", 1, 1_000_000),
        metrics=metrics,  # type: ignore[arg-type]
        vnc_tls_ca=vnc_ca,
        vnc_tls_verify_name=_bool(raw, "VNC_TLS_VERIFY_NAME", empty=True),
        vnc_tls_client_cert=client_cert,
        vnc_tls_client_key=client_key,
        workers=_workers(raw),
        drain_timeout=float(_int(raw, "DRAIN_TIMEOUT", 0, 30 * 86400)),
        warnings=warnings,
    )
    config.ssl_context()  # load the key pairs now, so a bad one stops start-up naming its key
    config.vnc_tls_context()
    return config
