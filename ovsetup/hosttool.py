"""`ovirt-websocket-proxy-host`: the steps of a deployment that run our code, on the target or the engine.

On the target (in its virtualenv): `csr` makes the proxy's key if there is none (0600; it never leaves
the host) and writes a CSR when the certificate is missing, foreign, misnamed, expiring or not for that
key; `verify-unit` checks a systemd unit offline; `check` is the final TLS handshake that verifies the
engine CA and the host's name. On the engine: `sign` signs a fetched CSR with the engine CA.
"""
from __future__ import annotations

import argparse
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

from . import paths, pki
from .core.transaction import atomic_write, make_parents
from .paths import Root

PROG = "ovirt-websocket-proxy-host"


def proxy_request(fqdn: str) -> str:
    """oVirt's name for a proxy host's files: `requests/<name>.req`, `certs/<name>.cer`."""
    return f"websocket-proxy-{fqdn}"


def csr(key: Path, cert: Path, ca: Path, request: Path, fqdn: str, owner: str | None = None) -> bool:
    """Make the key if missing; write a CSR when the certificate must be (re)issued. True if a CSR was written."""
    if not key.exists():
        make_parents(key)
        atomic_write(key, pki.key_pem(pki.generate_key()), 0o600, owner)
    elif owner is not None and key.stat().st_uid != pwd.getpwnam(owner).pw_uid:
        shutil.chown(key, owner, owner)
    key_data = key.read_bytes()
    if cert.exists():
        ca_cert = x509.load_pem_x509_certificate(ca.read_bytes())
        if (pki.certificate_problem(cert.read_bytes(), ca_cert, fqdn) is None
                and pki.public_keys_match(cert.read_bytes(), key_data)):
            request.unlink(missing_ok=True)
            return False
    private = pki._load_own_key(key_data)
    make_parents(request)
    atomic_write(request, pki.make_csr(private, fqdn), 0o644)
    return True


def sign(root: Root, fqdn: str) -> Path:
    """Sign `requests/websocket-proxy-<fqdn>.req` below root into `certs/websocket-proxy-<fqdn>.cer`."""
    name = proxy_request(fqdn)
    request = root.path(paths.REQUESTS_DIR / f"{name}.req")
    target = root.path(paths.PKI_DIR / "certs" / f"{name}.cer")
    cert = pki.sign_csr(root.path(paths.CA_CERT), root.path(paths.CA_KEY), request.read_bytes(), fqdn)
    make_parents(target)
    atomic_write(target, cert, 0o644)
    return target


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("csr", help="make the key if missing; print 'csr' when a CSR was written, else 'keep'")
    p.add_argument("--fqdn", required=True)
    p.add_argument("--key", type=Path, default=Path(paths.PROXY_KEY))
    p.add_argument("--cert", type=Path, default=Path(paths.PROXY_CERT))
    p.add_argument("--ca", type=Path, default=Path(paths.CA_CERT))
    p.add_argument("--request", type=Path, required=True)
    p.add_argument("--owner", help="the user that owns the key (the service user)")
    p = sub.add_parser("sign", help="sign requests/websocket-proxy-FQDN.req with the engine CA (engine side)")
    p.add_argument("--root", type=Path, default=Path("/"))
    p.add_argument("--fqdn", required=True)
    p = sub.add_parser("verify-unit", help="check a systemd unit file offline")
    p.add_argument("unit", type=Path)
    p = sub.add_parser("check", help="TLS handshake verifying the engine CA and the host name")
    p.add_argument("--fqdn", required=True)
    p.add_argument("--ca", type=Path, default=Path(paths.CA_CERT))
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=paths.DEFAULT_PROXY_PORT)
    p.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "csr":
            print("csr" if csr(args.key, args.cert, args.ca, args.request, args.fqdn, args.owner) else "keep")
        elif args.command == "sign":
            print(sign(Root(args.root), args.fqdn))
        elif args.command == "verify-unit":
            problem = verify_unit(args.unit)
            if problem:
                raise ValueError(problem)
        else:
            check(args.ca, args.fqdn, args.address, args.port, args.timeout)
            print(f"wss://{args.fqdn}:{args.port}/ answers with a certificate from the engine CA")
    except (OSError, ValueError, pki.PKIError, ssl.SSLError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
