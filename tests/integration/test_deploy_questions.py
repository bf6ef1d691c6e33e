"""The deployment questions without hosts: None deploys nothing; bad SSH settings stop the run before any change."""
from __future__ import annotations

import pytest

from tests.conftest import run

pytestmark = pytest.mark.integration


def test_no_local_proxy_and_no_deployment_writes_no_proxy_file(tmp_path):
    root = tmp_path / "root"
    result = run("engine-setup", "--root", str(root), "--otopi-environment=OVESETUP_CONFIG/fqdn=str:engine.example",
                 input="No\n\nOK\n")
    assert result.returncode == 0, result.stdout
    assert "Deploy the WebSocket Proxy to other machines? (None, Remote, Hosts) [None]: " in result.stdout
    assert not (root / "var/lib/ovirt-engine/setup/websocket-proxy-deploy.json").exists()
    assert not (root / "etc/pki/ovirt-engine").exists()
    answers = next((root / "var/lib/ovirt-engine/setup/answers").glob("*.conf")).read_text()
    assert "OVESETUP_CONFIG/websocketProxyDeploy=str:none" in answers


def test_missing_ssh_files_are_reported_together_before_any_change(tmp_path):
    root = tmp_path / "root"
    env = ("OVESETUP_CONFIG/websocketProxyConfig=bool:False OVESETUP_CONFIG/fqdn=str:engine.example "
           "OVESETUP_CONFIG/websocketProxyDeploy=str:HOSTS 'OVESETUP_CONFIG/websocketProxyHosts=multi-str:a.example "
           "10.0.0.1' OVESETUP_CONFIG/websocketProxySshKey=str:/nonexistent/key "
           "OVESETUP_CONFIG/websocketProxySshKnownHosts=str:/nonexistent/known_hosts")
    result = run("engine-setup", "--root", str(root), "--accept-defaults", f"--otopi-environment={env}")
    assert result.returncode == 1
    assert "websocketProxySshKey: /nonexistent/key does not exist" in result.stdout
    assert "websocketProxySshKnownHosts: /nonexistent/known_hosts does not exist" in result.stdout
    assert not (root / "etc").exists()
