"""The test-host tool itself: real sshd per host, private /etc views, host-to-host traffic, clean teardown."""
from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.integration


def test_hosts_have_their_own_files_and_reach_each_other(testhosts_factory):
    hosts = testhosts_factory(2)
    first, second = hosts.hosts
    assert first.ssh(hosts, "echo one > /etc/ovirt-engine/marker").returncode == 0
    assert second.ssh(hosts, "cat /etc/ovirt-engine/marker").returncode != 0
    assert first.ssh(hosts, "cat /etc/ovirt-engine/marker").stdout == "one\n"
    reach = first.ssh(hosts, f"python3 -c 'import socket; socket.create_connection((\"{second.address}\", 22), 2)'")
    assert reach.returncode == 0, reach.stderr


def test_a_wrong_host_key_is_refused(testhosts_factory, tmp_path):
    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    wrong = tmp_path / "known_hosts"
    other_key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    wrong.write_text(f"{host.address} {' '.join(other_key.with_suffix('.pub').read_text().split()[:2])}\n")
    result = subprocess.run(["ssh", "-i", hosts.client_key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                             "-o", f"UserKnownHostsFile={wrong}", f"root@{host.address}", "true"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_down_removes_every_namespace(testhosts_factory):
    hosts = testhosts_factory(1)
    from tests.integration.deploy.conftest import bring_up, tear_down

    tear_down(hosts.directory)
    assert "wsp-host" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    bring_up(1, hosts.directory)  # the fixture's teardown still has something to tear down
