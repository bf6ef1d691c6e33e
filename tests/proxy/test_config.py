"""The proxy's typed configuration: layering, --root re-rooting and one-line errors naming the key."""
from __future__ import annotations

import ipaddress
import os
import ssl

import pytest

from ovcommon.paths import Root
from tests.proxy.pkitools import write_override
from wsproxy import config
from wsproxy.config import ConfigError


def test_setup_written_config(pki):
    cfg = config.load(Root(pki.root))
    assert cfg.port == 6100 and cfg.host is None and cfg.ssl_only
    assert cfg.ssl_certificate == pki.root / "etc/pki/ovirt-engine/certs/websocket-proxy.cer"
    assert cfg.engine_cert == pki.engine.cert
    assert cfg.ssl_min_version is ssl.TLSVersion.TLSv1_2
    assert (cfg.clock_skew, cfg.max_sessions, cfg.idle_timeout, cfg.metrics) == (5, 4096, 0, "loopback")
    assert cfg.allowed_targets == () and cfg.allowed_origins == () and not cfg.warnings
    assert (cfg.max_frame_size, cfg.max_session_buffer, cfg.handshake_timeout, cfg.max_handshakes) == (
        1048576, 524288, 15, 256)
    assert isinstance(cfg.ssl_context(), ssl.SSLContext)


def test_conf_d_sorted_last_wins(pki):
    write_override(pki.root, "PROXY_PORT=7000\n", "20-a.conf")
    write_override(pki.root, "PROXY_PORT=7001\nALLOWED_TARGETS=\"10.0.0.0/8, 2001:db8::/32\"\n"
                   "ALLOWED_TARGET_PORTS=5900-5999,6100\nSSL_MIN_VERSION=TLSv1.3\n", "30-b.conf")
    cfg = config.load(Root(pki.root))
    assert cfg.port == 7001
    assert cfg.allowed_targets == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert cfg.allowed_ports == ((5900, 5999), (6100, 6100))
    assert cfg.ssl_min_version is ssl.TLSVersion.TLSv1_3
    assert cfg.target_allowed("10.1.2.3", 5901)
    assert cfg.target_allowed("::ffff:10.1.2.3", 6100)
    assert not cfg.target_allowed("10.1.2.3", 22)
    assert not cfg.target_allowed("192.168.1.1", 5901)


def test_vnc_side_tls_verifies_by_default(pki):
    cfg = config.load(Root(pki.root))
    assert cfg.vnc_tls_ca == pki.ca_file and cfg.vnc_tls_verify_name
    ctx = cfg.vnc_tls_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    write_override(pki.root, "VNC_TLS_VERIFY_NAME=False\n"
                   "VNC_TLS_CLIENT_CERT=/etc/pki/ovirt-engine/certs/websocket-proxy.cer\n"
                   "VNC_TLS_CLIENT_KEY=/etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass\n")
    ctx = config.load(Root(pki.root)).vnc_tls_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED and not ctx.check_hostname


def test_workers_auto_is_the_usable_cores_at_most_four(pki):
    assert config.load(Root(pki.root)).workers == min(4, len(os.sched_getaffinity(0)))
    write_override(pki.root, "WORKERS=3\nDRAIN_TIMEOUT=60\n")
    cfg = config.load(Root(pki.root))
    assert (cfg.workers, cfg.drain_timeout) == (3, 60)


def test_unknown_key_is_a_warning(pki):
    write_override(pki.root, "TRACE_ENABLE=False\nFROBNICATE=1\n")
    assert config.load(Root(pki.root)).warnings == ("FROBNICATE: unknown key, ignored",)


@pytest.mark.parametrize(("text", "key"), [
    ("PROXY_PORT=http\n", "PROXY_PORT"),
    ("PROXY_PORT=70000\n", "PROXY_PORT"),
    ("SSL_ONLY=maybe\n", "SSL_ONLY"),
    ("SSL_MIN_VERSION=TLSv1.0\n", "SSL_MIN_VERSION"),
    ("SSL_KEY=/etc/pki/ovirt-engine/keys/missing.key\n", "SSL_KEY"),
    ("SSL_CERTIFICATE=\nSSL_KEY=\n", "SSL_CERTIFICATE"),
    ("CERT_FOR_DATA_VERIFICATION=/etc/pki/ovirt-engine/ca-missing.pem\n", "CERT_FOR_DATA_VERIFICATION"),
    ("CERT_FOR_DATA_VERIFICATION=/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf\n",
     "CERT_FOR_DATA_VERIFICATION"),
    ("ALLOWED_TARGETS=10.0.0.0/33\n", "ALLOWED_TARGETS"),
    ("ALLOWED_TARGET_PORTS=6000-5900\n", "ALLOWED_TARGET_PORTS"),
    ("ALLOWED_ORIGINS=engine.example\n", "ALLOWED_ORIGINS"),
    ("METRICS=public\n", "METRICS"),
    ("MAX_SESSIONS=0\n", "MAX_SESSIONS"),
    ("IDLE_TIMEOUT=-1\n", "IDLE_TIMEOUT"),
    ("MAX_FRAME_SIZE=1\n", "MAX_FRAME_SIZE"),
    ("MAX_SESSION_BUFFER=lots\n", "MAX_SESSION_BUFFER"),
    ("HANDSHAKE_TIMEOUT=0\n", "HANDSHAKE_TIMEOUT"),
    ("MAX_HANDSHAKES=0\n", "MAX_HANDSHAKES"),
    ("SSL_CIPHERS=NOTACIPHER\n", "SSL_CIPHERS"),
    ("WORKERS=0\n", "WORKERS"),
    ("WORKERS=many\n", "WORKERS"),
    ("DRAIN_TIMEOUT=soon\n", "DRAIN_TIMEOUT"),
    ("SSL_KEY=/etc/pki/ovirt-engine/ca.pem\n", "SSL_KEY"),
    ('PROXY_PORT="6100\n', "PROXY_PORT"),
    ("VNC_TLS_CA=/etc/pki/ovirt-engine/missing-ca.pem\n", "VNC_TLS_CA"),
    ("VNC_TLS_CA=/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf\n", "VNC_TLS_CA"),
    ("VNC_TLS_CA=\n", "VNC_TLS_CA"),
    ("VNC_TLS_VERIFY_NAME=perhaps\n", "VNC_TLS_VERIFY_NAME"),
    ("VNC_TLS_CLIENT_CERT=/etc/pki/ovirt-engine/certs/websocket-proxy.cer\n", "VNC_TLS_CLIENT_KEY"),
    ("VNC_TLS_CLIENT_CERT=/etc/pki/ovirt-engine/certs/websocket-proxy.cer\n"
     "VNC_TLS_CLIENT_KEY=/etc/pki/ovirt-engine/ca.pem\n", "VNC_TLS_CLIENT_KEY"),
])
def test_bad_config_names_the_key(pki, text, key):
    write_override(pki.root, text)
    with pytest.raises(ConfigError) as info:
        config.load(Root(pki.root))
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("data", "key", "what"), [
    ("PROXY_PORT=²\n".encode(), "PROXY_PORT", "not a whole number"),
    (b"PROXY_PORT=" + b"9" * 5000 + b"\n", "PROXY_PORT", "not a whole number"),
    ("ALLOWED_TARGET_PORTS=5900-٥٩٠٠\n".encode(), "ALLOWED_TARGET_PORTS", "not a port or range"),
    (b"PROXY_HOST=*\nALLOWED_ORIGINS=https://caf\xe9.example\n", "ALLOWED_ORIGINS", ":2: not UTF-8 text"),
    (b"\xff\xfe=1\n", "config", ":1: not UTF-8 text"),
    (b"SSL_CIPHERS=HIGH\x00:!aNULL\n", "SSL_CIPHERS", ":1: the value holds a NUL character"),
    (b"SSL_KEY=/etc/pki/ovirt-engine/keys/x\x00.key\n", "SSL_KEY", "NUL character"),
])
def test_hostile_values_are_one_line_naming_file_and_key(pki, data, key, what):
    path = write_override(pki.root, "")
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        config.load(Root(pki.root))
    message = str(info.value)
    assert info.value.key == key and message.startswith(f"{key}: ") and "\n" not in message
    assert what in message and str(path) in message and len(message) < 300
