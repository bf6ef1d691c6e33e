"""systemd machines for the service tests: `scripts/sdmachines` brings them up, the fixtures tear them down.

Needs root, systemd-nspawn and debootstrap; skipped otherwise. CI runs them as root (scripts/apt-packages/
systemd.txt). The base tree is built once and cached below /var/cache/; machines boot once per module.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[3] / "scripts" / "sdmachines"
MACHINES_LOCK = "/run/lock/wsp-sdmachines.lock"


@dataclass(frozen=True)
class Machine:
    name: str
    fqdn: str
    address: str
    host_key_pub: str
    leader: int
    client_key: str
    known_hosts: str

    def ssh(self, command: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        """Run a shell command on this machine as root, over SSH."""
        return subprocess.run(
            ["ssh", "-i", self.client_key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", f"root@{self.address}", command],
            capture_output=True, text=True, timeout=timeout, input=input)

    def check(self, command: str, timeout: float = 120, input: str | None = None) -> str:
        """`ssh` that must succeed; its standard output."""
        result = self.ssh(command, timeout, input)
        assert result.returncode == 0, f"{self.name}: {command}: {result.stdout}{result.stderr}"
        return result.stdout

    def show(self, unit: str, prop: str) -> str:
        """A systemd unit property (`systemctl show -P`)."""
        return self.check(f"systemctl show -P {prop} {unit}").strip()


@dataclass(frozen=True)
class Machines:
    """Shaped like the deploy tests' SshHosts, so engine-setup helpers take either."""
    directory: Path
    client_key: str
    known_hosts: str
    hosts: tuple[Machine, ...]


def bring_up(count: int, directory: Path, release: str = "bookworm") -> Machines:
    result = subprocess.run([str(TOOL), "up", str(count), "--dir", str(directory), "--release", release],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    state = json.loads((directory / "state.json").read_text())
    machines = tuple(Machine(m["name"], m["fqdn"], m["address"], m["host_key_pub"], m["leader"],
                             state["client_key"], state["known_hosts"]) for m in state["machines"])
    return Machines(directory, state["client_key"], state["known_hosts"], machines)


@pytest.fixture(scope="module")
def sdmachines_factory() -> Iterator:
    """`factory(n, release="bookworm")` boots n fresh machines (replacing any this module booted before)."""
    if os.geteuid() != 0:
        pytest.skip("systemd machines need root")
    for tool in ("systemd-nspawn", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/apt-packages/systemd.txt)")
    # Machine names, addresses and the bridge are machine-wide: one test run at a time may hold them.
    lock = open(MACHINES_LOCK, "w")  # noqa: SIM115 (held for the module's lifetime)
    fcntl.flock(lock, fcntl.LOCK_EX)
    directory = Path(tempfile.mkdtemp(prefix="wsp-sd-", dir="/tmp"))

    def factory(count: int, release: str = "bookworm") -> Machines:
        return bring_up(count, directory, release)

    try:
        yield factory
    finally:
        subprocess.run([str(TOOL), "down", "--dir", str(directory)], check=True, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
        lock.close()


from tests.integration.deploy.conftest import engine_root, wheelhouse_tar  # noqa: E402,F401 (fixtures)
