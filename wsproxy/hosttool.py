"""The proxy host's side of a deployment (`python -m wsproxy.hosttool`, also `ovirt-websocket-proxy-host`), run
in the target's virtualenv, which holds this product's wheel with only the proxy side's requirements.

`configure` reads a JSON spec on stdin and writes the engine CA, the engine certificate and the proxy config
with the same templates as local setup, checks the systemd unit offline where systemd does not run, makes the
proxy's key if there is none (0600; it never leaves the host) and prints a CSR when the certificate is missing,
foreign, misnamed, expiring or not for that key; `install-cert` installs the signed certificate from stdin;
`check` is the final TLS handshake that verifies the engine CA and the host's name. The engine side signs
(`ovsetup.hosttool`).
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

from ovcommon import certs, paths
from ovcommon.files import atomic_write, make_parents
from ovcommon.render import render

from . import hostfiles

PROG = "ovirt-websocket-proxy-host"
ALLOWED_TARGETS_CONFIG = paths.PROXY_CONFIG_D / "20-setup-allowed-targets.conf"
UNIT_NAME = "ovirt-websocket-proxy.service"


def systemd_running() -> bool:
    """systemd runs this machine (the test sd_booted() makes)."""
    return Path("/run/systemd/system").is_dir()


def _existing_user(name: str | None) -> str | None:
    try:
        return pwd.getpwnam(name).pw_name if name else None
    except KeyError:
        return None


def csr(key: Path, cert: Path, ca: Path, request: Path, fqdn: str, owner: str | None = None) -> bool:
    """Make the key if missing; write a CSR when the certificate must be (re)issued. True if a CSR was written.

    The key belongs to `owner` when that user exists (the service user on systemd hosts)."""
    owner = _existing_user(owner)
    renewing = False
    if cert.exists() and key.exists():
        ca_cert = x509.load_pem_x509_certificate(ca.read_bytes())
        if certs.certificate_problem(cert.read_bytes(), ca_cert, fqdn) is None:
            if certs.public_keys_match(cert.read_bytes(), key.read_bytes()):
                request.unlink(missing_ok=True)
                return False
        else:
            renewing = True  # a renewed certificate gets a new key, as the local proxy's does
    if renewing or not key.exists():
        make_parents(key)  # 0755 like local setup's: the service user reaches its 0600 key
        atomic_write(key, certs.key_pem(certs.generate_key()), 0o600, owner)
    elif owner is not None and key.stat().st_uid != pwd.getpwnam(owner).pw_uid:
        shutil.chown(key, owner, owner)
    private = certs.load_own_key(key.read_bytes())
    make_parents(request)
    atomic_write(request, certs.make_csr(private, fqdn), 0o644)
    return True


def _write(path: Path, content: str | bytes, mode: int = 0o644) -> bool:
    """Write when the content or mode differs; True if it did."""
    data = content.encode() if isinstance(content, str) else content
    if path.is_file() and path.read_bytes() == data and path.stat().st_mode & 0o7777 == mode:
        return False
    make_parents(path)
    atomic_write(path, data, mode)
    return True


def configure(spec: dict) -> dict:
    """Write what the proxy reads and, where systemd does not run, an offline-checked unit; make the key and,
    when needed, a CSR. Returns {"changed": bool, "files": [written], "csr": PEM or "", "systemd": bool}."""
    prefix = Path(spec["prefix"])
    systemd = systemd_running()
    files: dict[Path, str] = {
        Path(paths.CA_CERT): spec["ca"],
        Path(paths.ENGINE_CERT): spec["engine_cert"],
        Path(paths.PROXY_SETUP_CONFIG): render(
            "10-setup.conf.j2", port=spec["port"], ssl_certificate=paths.PROXY_CERT, ssl_key=paths.PROXY_KEY,
            cert_for_data_verification=paths.ENGINE_CERT),
    }
    if spec["allowed_targets"]:
        files[Path(ALLOWED_TARGETS_CONFIG)] = render("20-setup-allowed-targets.conf.j2",
                                                     allowed_targets=spec["allowed_targets"])
    changed = [str(path) for path, content in files.items() if _write(path, content)]
    if not spec["allowed_targets"] and Path(ALLOWED_TARGETS_CONFIG).exists():
        Path(ALLOWED_TARGETS_CONFIG).unlink()
        changed.append(str(ALLOWED_TARGETS_CONFIG))
    hostfiles.record(prefix, changed, [*files, Path(ALLOWED_TARGETS_CONFIG)])
    if not systemd:
        unit = prefix / UNIT_NAME
        content = render("ovirt-websocket-proxy.service.j2", user=spec["user"], sysconfig=paths.SYSCONFIG,
                         executable=prefix / "venv" / "bin" / "ovirt-websocket-proxy", proxy_port=spec["port"])
        if _write(unit, content):
            problem = verify_unit(unit)
            if problem:
                raise ValueError(f"the systemd unit does not verify: {problem}")
    request = prefix / "websocket-proxy.req"
    needed = csr(Path(paths.PROXY_KEY), Path(paths.PROXY_CERT), Path(paths.CA_CERT), request, spec["fqdn"],
                 spec["user"])
    return {"changed": bool(changed) or needed, "files": changed, "csr": request.read_text() if needed else "",
            "systemd": systemd}


def install_cert(cert_pem: bytes, fqdn: str) -> bool:
    """Install the signed certificate, if it is for this host's key and name; True if it changed."""
    ca_cert = x509.load_pem_x509_certificate(Path(paths.CA_CERT).read_bytes())
    problem = certs.certificate_problem(cert_pem, ca_cert, fqdn)
    if problem is None and not certs.public_keys_match(cert_pem, Path(paths.PROXY_KEY).read_bytes()):
        problem = "is not for this host's key"
    if problem:
        raise ValueError(f"the signed certificate {problem}")
    return _write(Path(paths.PROXY_CERT), cert_pem)


def verify_unit(unit: Path) -> str | None:
    """What `systemd-analyze verify` (when installed) or, failing that, a minimal check finds wrong."""
    if shutil.which("systemd-analyze"):
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
        return None if result.returncode == 0 else result.stderr.strip() or "systemd-analyze verify failed"
    text = unit.read_text()
    missing = [part for part in ("[Unit]", "[Service]", "[Install]", "ExecStart=") if part not in text]
    return f"{unit}: no {', '.join(missing)}" if missing else None


def check(ca: Path, fqdn: str, address: str, port: int, timeout: float) -> None:
    """A TLS handshake with the proxy that verifies the engine CA and `fqdn`; retries until `timeout`."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname=fqdn):
                return
        except ssl.SSLCertVerificationError:
            raise
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The proxy host's commands; `sub` is returned too so the engine side can add its own."""
    top = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("configure", help="read a JSON spec on stdin; print a JSON result")
    p = sub.add_parser("install-cert", help="install the signed certificate read from stdin")
    p.add_argument("--fqdn", required=True)
    p = sub.add_parser("verify-unit", help="check a systemd unit file offline")
    p.add_argument("unit", type=Path)
    p = sub.add_parser("check", help="TLS handshake verifying the engine CA and the host name")
    p.add_argument("--fqdn", required=True)
    p.add_argument("--ca", type=Path, default=Path(paths.CA_CERT))
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=paths.DEFAULT_PROXY_PORT)
    p.add_argument("--timeout", type=float, default=10.0)
    top.set_defaults(subparsers=sub)
    return top


def run(args: argparse.Namespace) -> None:
    """One proxy-host command; errors are exceptions the caller prints as one line."""
    if args.command == "configure":
        print(json.dumps(configure(json.load(sys.stdin))))
    elif args.command == "install-cert":
        print("changed" if install_cert(sys.stdin.buffer.read(), args.fqdn) else "unchanged")
    elif args.command == "verify-unit":
        problem = verify_unit(args.unit)
        if problem:
            raise ValueError(problem)
    else:
        check(args.ca, args.fqdn, args.address, args.port, args.timeout)
        print(f"wss://{args.fqdn}:{args.port}/ answers with a certificate from the engine CA")


ERRORS = (OSError, ValueError, KeyError, OverflowError, ssl.SSLError)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run(args)
    except ERRORS as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
