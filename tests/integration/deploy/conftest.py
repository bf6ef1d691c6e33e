"""Test hosts for the deployment tests: `scripts/testhosts` brings them up, the fixtures tear them down.

Needs root (network namespaces); the tests are skipped otherwise. CI runs them as root.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[3] / "scripts" / "testhosts"


@dataclass(frozen=True)
class TestHost:
    name: str
    fqdn: str
    address: str
    host_key_pub: str

    def ssh(self, hosts: TestHosts, command: str) -> subprocess.CompletedProcess:
        """Run a shell command on this host as root."""
        return subprocess.run(
            ["ssh", "-i", hosts.client_key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={hosts.known_hosts}", f"root@{self.address}", command],
            capture_output=True, text=True, timeout=60)

    def netns(self, *argv: str, **kwargs) -> subprocess.Popen:
        """Start a process inside this host's network namespace (the controller's filesystem view)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)


@dataclass(frozen=True)
class TestHosts:
    directory: Path
    client_key: str
    known_hosts: str
    hosts: tuple[TestHost, ...]


def bring_up(count: int, directory: Path) -> TestHosts:
    subprocess.run([str(TOOL), "up", str(count), "--dir", str(directory)], check=True, capture_output=True)
    state = json.loads((directory / "state.json").read_text())
    hosts = tuple(TestHost(h["name"], h["fqdn"], h["address"], h["host_key_pub"]) for h in state["hosts"])
    return TestHosts(directory, state["client_key"], state["known_hosts"], hosts)


def tear_down(directory: Path) -> None:
    subprocess.run([str(TOOL), "down", "--dir", str(directory)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def testhosts_factory() -> Iterator:
    """`factory(n)` brings up n fresh hosts (replacing any this module brought up before)."""
    if os.geteuid() != 0:
        pytest.skip("test hosts need root (network namespaces)")
    directory = Path(tempfile.mkdtemp(prefix="wsp-th-", dir="/tmp"))

    def factory(count: int) -> TestHosts:
        return bring_up(count, directory)

    try:
        yield factory
    finally:
        tear_down(directory)
