"""scripts/sdmachines: machines that boot systemd, each with its own identity, reachable over SSH only."""
from __future__ import annotations

import subprocess

import pytest

from tests.integration.systemd.conftest import TOOL

pytestmark = pytest.mark.integration


def test_machines_boot_systemd_with_their_own_identity_and_no_route_out(sdmachines_factory):
    machines = sdmachines_factory(2).hosts
    tree = subprocess.run([str(TOOL), "tree"], capture_output=True, text=True, check=True).stdout.strip()
    ids = set()
    for machine in machines:
        out = machine.check("ps -o comm= -p 1; systemctl is-system-running; cat /etc/machine-id; "
                            "cat /etc/ssh/ssh_host_ed25519_key.pub; ip route; hostname").split("\n")
        assert out[:2] == ["systemd", "running"]
        ids.add(out[2])
        assert out[3].split()[:2] == machine.host_key_pub.split()
        assert "default" not in "\n".join(out[4:])
        assert machine.name in out
        # systemctl -M from the box reaches the machine's own systemd
        assert subprocess.run(["systemctl", "-M", machine.name, "is-active", "ssh"],
                              capture_output=True, text=True).stdout.strip() == "active"
        assert machine.ssh(f"test -e {tree}").returncode != 0  # the machine sees its own root, not the box's
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    # the machines reach each other over the bridge, the box's network is not routed
    assert machines[0].ssh(f"timeout 2 bash -c 'echo > /dev/tcp/{machines[1].address}/22'").returncode == 0
    assert machines[0].ssh("timeout 2 bash -c 'echo > /dev/tcp/1.1.1.1/80'").returncode != 0
