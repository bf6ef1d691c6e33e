"""The shipped playbook run by an admin's own `ansible-playbook`, with an inventory that names the engine."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run
from tests.integration.deploy.conftest import console_size

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def test_ansible_playbook_with_an_engine_group_deploys_a_console_proxy_and_a_rerun_changes_nothing(
        testhosts_factory, engine_root, tmp_path):
    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    done = run("engine-setup", "--root", str(engine_root), "--accept-defaults", "--otopi-environment="
               "OVESETUP_CONFIG/websocketProxyConfig=bool:True OVESETUP_CONFIG/fqdn=str:engine.wsp.test")
    assert done.returncode == 0, done.stdout
    archive = tmp_path / "wsp-wheels.tar"
    made = run("ovirt-websocket-proxy-host", "wheelhouse", "--root", str(engine_root), "--output", str(archive))
    assert made.returncode == 0 and archive.is_file(), made.stderr
    playbook = run("ovirt-websocket-proxy-host", "playbook").stdout.strip()
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"""\
[engine]
engine.wsp.test ansible_connection=local ansible_python_interpreter=/usr/bin/python3

[websocket_proxy]
{host.fqdn} ansible_host={host.address}

[websocket_proxy:vars]
ansible_user=root
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file={hosts.client_key}
ansible_ssh_common_args='-o UserKnownHostsFile={hosts.known_hosts} -o StrictHostKeyChecking=yes'
ovirt_websocket_proxy_engine_pki={engine_root}/etc/pki/ovirt-engine
ovirt_websocket_proxy_engine_root={engine_root}
ovirt_websocket_proxy_engine_python={sys.executable}
""")

    def ansible_playbook(*extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"}
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), playbook,
                               "-e", f"ovirt_websocket_proxy_wheelhouse_archive={archive}", *extra],
                              capture_output=True, text=True, env=env, timeout=600)

    first = ansible_playbook()
    assert first.returncode == 0, first.stdout + first.stderr
    assert (engine_root / f"etc/pki/ovirt-engine/certs/websocket-proxy-{host.fqdn}.cer").is_file()  # signed there

    def ticket(address: str, port: int) -> str:
        result = run("engine-console-ticket", "--root", str(engine_root), "--host", address, "--port", str(port))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert console_size(engine_root, host, tmp_path, 79, ticket) == (320, 240)

    second = ansible_playbook()
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(rf"^{re.escape(host.fqdn)}\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", second.stdout,
                     re.MULTILINE), second.stdout

    removed = ansible_playbook("-e", "ovirt_websocket_proxy_state=absent")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert host.ssh(hosts, "ls /opt/ovirt-websocket-proxy").stdout.split() == []
