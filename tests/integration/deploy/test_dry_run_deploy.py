"""engine-setup --dry-run in Remote mode against a real SSH test host: it touches neither the root nor the
host, and the following real deployment changes exactly the files it printed."""
from __future__ import annotations

import pytest

from tests.conftest import run
from tests.integration.test_dry_run import assert_prediction, snapshot

pytestmark = pytest.mark.integration


def test_remote_dry_run_predicts_the_deployment(testhosts_factory, engine_root, tmp_path):
    hosts = testhosts_factory(1)
    host = hosts.hosts[0]
    env = " ".join([
        "OVESETUP_CONFIG/websocketProxyConfig=bool:False", "OVESETUP_CONFIG/fqdn=str:engine.wsp.test",
        f"OVESETUP_CONFIG/websocketProxySshKey=str:{hosts.client_key}",
        f"OVESETUP_CONFIG/websocketProxySshKnownHosts=str:{hosts.known_hosts}",
        "OVESETUP_CONFIG/websocketProxyDeploy=str:Remote",
        f"'OVESETUP_CONFIG/websocketProxyRemoteHost=str:{host.fqdn} {host.address}'"])
    before = snapshot(engine_root)
    # the logs (and so Ansible's artifacts) go outside the root, so the root holds only setup's own files
    dry = run("engine-setup", "--root", str(engine_root), "--dry-run", f"--log={tmp_path / 'dry.log'}",
              f"--otopi-environment={env}")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would deploy the WebSocket Proxy with Ansible (remote) to {host.fqdn}, then" in dry.stdout
    assert f"option WebSocketProxy: Off -> {host.fqdn}:6100" in dry.stdout
    assert snapshot(engine_root) == before
    assert host.ssh(hosts, "ls /opt/ovirt-websocket-proxy 2>/dev/null").stdout == ""

    real = run("engine-setup", "--root", str(engine_root), "--accept-defaults", f"--log={tmp_path / 'real.log'}",
               f"--otopi-environment={env}")
    assert real.returncode == 0, real.stdout + real.stderr
    assert_prediction(dry.stdout, before, snapshot(engine_root))
