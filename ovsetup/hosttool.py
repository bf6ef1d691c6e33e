"""`ovirt-websocket-proxy-host`: the deployment steps that run our code. The engine's own steps are here:
`sign` signs a proxy host's CSR with the engine CA; for admins who run their own Ansible, `wheelhouse` writes
the tar of wheels the targets install and `playbook` prints where the playbook is. The proxy host's steps
(`configure`, `install-cert`, `check`, `verify-unit`) belong to the proxy side, `wsproxy.hosttool`, which this
command hands them to.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ovcommon import paths
from ovcommon.errors import entry
from ovcommon.files import atomic_write, make_parents
from ovcommon.paths import Root
from ovcommon.resources import resource_dir
from wsproxy import hosttool as proxy_side

from . import pki

PROG = proxy_side.PROG


def proxy_request(fqdn: str) -> str:
    """oVirt's name for a proxy host's files: `requests/<name>.req`, `certs/<name>.cer`."""
    return f"websocket-proxy-{fqdn}"


def sign(root: Root, fqdn: str, request_pem: bytes) -> bytes:
    """Keep the request as `requests/websocket-proxy-<fqdn>.req` below root, sign it with the engine CA and
    keep the certificate as `certs/websocket-proxy-<fqdn>.cer`; return the certificate."""
    name = proxy_request(fqdn)
    request = root.path(paths.REQUESTS_DIR / f"{name}.req")
    target = root.path(paths.PKI_DIR / "certs" / f"{name}.cer")
    cert = pki.sign_csr(root.path(paths.CA_CERT), root.path(paths.CA_KEY), request_pem, fqdn)
    for path, data in ((request, request_pem), (target, cert)):
        make_parents(path)
        atomic_write(path, data, 0o644)
    return cert


def write_wheelhouse(root: Root, output: Path, python_version: str | None, wheel_dir: Path | None) -> str:
    """Copy the wheelhouse for targets with `python_version` (default the engine's; built or taken from the
    cache below root, as engine-setup's) to `output`; return its id."""
    from .deploy import wheelhouse  # engine side only: needs what the proxy hosts do not install

    engine = wheelhouse.TargetPython.engine()
    python = engine if python_version in (None, engine.version) else \
        wheelhouse.TargetPython(str(python_version), engine.machine, engine.libc)
    try:
        house = wheelhouse.wheelhouse_for(root, python, wheel_dir)
    except wheelhouse.DeployError as exc:
        raise ValueError(str(exc)) from None
    make_parents(output)
    shutil.copyfile(house.archive, output)
    return house.id


@entry(PROG)
def main(argv: list[str] | None = None) -> int:
    top = proxy_side.parser()
    sub = top.get_default("subparsers")
    p = sub.add_parser("sign", help="sign the CSR read from stdin with the engine CA (engine side)")
    p.add_argument("--root", type=Path, default=Path("/"))
    p.add_argument("--fqdn", required=True)
    p = sub.add_parser("wheelhouse", help="write the tar of wheels the proxy hosts install (engine side)")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--root", type=Path, default=Path("/"), help="the cache lies below it, as engine-setup's")
    p.add_argument("--python-version", help="the targets' Python (major.minor); default this one's")
    p.add_argument("--find-links", type=Path, help="a directory of wheels to use instead of the package index")
    sub.add_parser("playbook", help="print the path of the shipped playbook, websocket-proxy.yml (engine side)")
    args = top.parse_args(argv)
    try:
        if args.command == "playbook":
            print(resource_dir("ansible") / "websocket-proxy.yml")
        elif args.command == "sign":
            sys.stdout.buffer.write(sign(Root(args.root), args.fqdn, sys.stdin.buffer.read()))
        elif args.command == "wheelhouse":
            house_id = write_wheelhouse(Root(args.root), args.output, args.python_version, args.find_links)
            print(f"{args.output}: wheelhouse {house_id}")
        else:
            proxy_side.run(args)
    except (*proxy_side.ERRORS, pki.PKIError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
