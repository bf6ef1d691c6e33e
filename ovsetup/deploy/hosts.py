"""The host list: our own (`fqdn [address]` lines) as an inventory, or the admin's inventory file."""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

GROUP = "websocket_proxy"


class DeployError(Exception):
    """The deployment cannot start (bad host list, no wheelhouse, damaged record); the message says why."""


@dataclass(frozen=True)
class Ssh:
    user: str = "root"
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None  # None: the user's ~/.ssh/known_hosts
    accept_new: bool = False

    @property
    def known_hosts_file(self) -> str:
        return self.known_hosts or str(Path("~/.ssh/known_hosts").expanduser())


@dataclass(frozen=True)
class Target:
    fqdn: str
    address: str | None = None


def parse_hosts(lines: Iterable[str]) -> list[Target]:
    """`fqdn` or `fqdn address`, one host a line; blank lines and `#` comments are skipped."""
    targets = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise DeployError(f"{line.strip()!r}: expected 'fqdn' or 'fqdn address'")
        if len(words) == 2:
            try:
                ipaddress.ip_address(words[1])
            except ValueError:
                raise DeployError(f"{line.strip()!r}: {words[1]!r} is not an IP address") from None
        targets.append(Target(words[0], words[1] if len(words) == 2 else None))
    if len({t.fqdn for t in targets}) != len(targets):
        raise DeployError("a host is listed twice")
    return targets


def _address(target: Target) -> str:
    if target.address:
        return target.address
    try:
        return socket.getaddrinfo(target.fqdn, None, type=socket.SOCK_STREAM)[0][4][0]
    except OSError:
        raise DeployError(f"{target.fqdn} does not resolve here: list it as '{target.fqdn} <address>'") from None


def inventory(targets: Sequence[Target], hosts_mode: bool) -> dict:
    """An inventory for our own host list; in Hosts mode each host's proxy may reach only its own address."""
    hosts: dict[str, dict] = {}
    for target in targets:
        values: dict = {"ansible_host": target.address} if target.address else {}
        if hosts_mode:
            values["ovirt_websocket_proxy_allowed_targets"] = [_address(target)]
        hosts[target.fqdn] = values
    return {GROUP: {"hosts": hosts}}


def inventory_hosts(inventory_file: Path) -> list[str]:
    """The host names an inventory file holds, as `ansible-inventory` lists them (but the `engine` group's)."""
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory_file),
                             "--list"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    if result.returncode != 0:
        raise DeployError(f"cannot read the inventory {inventory_file}: {result.stderr.strip()}")
    data = json.loads(result.stdout)
    engine = set(data.get("engine", {}).get("hosts", []))
    names = sorted((data.get("_meta", {}).get("hostvars", {}).keys()
                    | {h for group in data.values() if isinstance(group, dict) for h in group.get("hosts", [])})
                   - engine)
    if not names:
        raise DeployError(f"the inventory {inventory_file} names no host")
    return names
