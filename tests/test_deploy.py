"""The deployment driver's plain parts: host lists, inventories, the wheelhouse key, result parsing."""
from __future__ import annotations

import pytest

from ovsetup import deploy
from ovsetup.deploy import runner


def test_host_lines_take_a_name_and_an_optional_address():
    assert deploy.parse_hosts(["a.example", "", "# comment", "b.example 10.0.0.2  # rack 2"]) == [
        deploy.Target("a.example"), deploy.Target("b.example", "10.0.0.2")]


@pytest.mark.parametrize("lines", [["a b c"], ["a.example not-an-ip"], ["a.example", "a.example 10.0.0.1"]])
def test_bad_host_lines_are_refused(lines):
    with pytest.raises(deploy.DeployError):
        deploy.parse_hosts(lines)


def test_hosts_mode_limits_each_proxy_to_its_own_address():
    targets = [deploy.Target("a.example", "10.0.0.1"), deploy.Target("localhost")]
    hosts = deploy.inventory(targets, hosts_mode=True)[deploy.GROUP]["hosts"]
    assert hosts["a.example"] == {"ansible_host": "10.0.0.1", "ovirt_websocket_proxy_allowed_targets": ["10.0.0.1"]}
    assert hosts["localhost"]["ovirt_websocket_proxy_allowed_targets"][0] in ("127.0.0.1", "::1")
    assert deploy.inventory(targets, hosts_mode=False)[deploy.GROUP]["hosts"]["localhost"] == {}


def test_an_unresolvable_host_without_address_is_refused_in_hosts_mode():
    with pytest.raises(deploy.DeployError, match="does not resolve"):
        deploy.inventory([deploy.Target("nowhere.invalid")], hosts_mode=True)


def test_ssh_settings_reach_ansible_and_host_keys_are_checked():
    env = runner._envvars(deploy.Ssh(user="admin", port=2222, key="/k", known_hosts="/kh"), "/tmp/cp")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "UserKnownHostsFile=/kh" in env["ANSIBLE_SSH_ARGS"]
    assert "StrictHostKeyChecking=yes" in env["ANSIBLE_SSH_ARGS"]
    assert (env["ANSIBLE_REMOTE_USER"], env["ANSIBLE_REMOTE_PORT"], env["ANSIBLE_PRIVATE_KEY_FILE"]) == \
        ("admin", "2222", "/k")
    accepting = runner._envvars(deploy.Ssh(accept_new=True), "/tmp/cp")
    assert "StrictHostKeyChecking=accept-new" in accepting["ANSIBLE_SSH_ARGS"]


def test_the_progress_line_names_host_task_and_outcome():
    lines: list[str] = []
    handle = runner._progress_handler(lines.append)
    handle({"event": "runner_on_ok", "event_data": {"host": "h", "task": "T", "res": {"changed": True}}})
    handle({"event": "runner_on_unreachable", "event_data": {"host": "h", "task": "U", "res": {}}})
    handle({"event": "playbook_on_task_start", "event_data": {"task": "T"}})
    assert lines == ["h: T: changed", "h: U: UNREACHABLE"]


def test_an_inventory_file_names_its_hosts(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[hypervisors]\nh1.example ansible_host=10.0.0.1\nh2.example\n\n[other]\nh3.example\n")
    assert deploy.inventory_hosts(inventory) == ["h1.example", "h2.example", "h3.example"]
    with pytest.raises(deploy.DeployError):
        deploy.inventory_hosts(tmp_path / "missing.ini")


def test_the_engine_side_builds_the_inventory_without_the_engine_group(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[engine]\nengine.example\n\n[websocket_proxy]\nh1.example\n")
    assert deploy.inventory_hosts(inventory) == ["h1.example"]


def test_a_damaged_record_is_a_clear_error(tmp_path):
    from ovcommon import paths
    from ovcommon.paths import Root

    root = Root(tmp_path)
    record = deploy.Deployment("remote", [deploy.Target("h1.example", "10.0.0.1")], wheel_dir="/srv/wheels")
    assert deploy.save_record(root, record) is True
    assert deploy.save_record(root, record) is False  # the same record: the file is not written again
    assert deploy.load_record(root) == record
    path = root.path(paths.DEPLOY_RECORD)
    for damage in ("{not json", '{"mode": "remote"}', '{"mode": "remote", "targets": [{"name": "x"}], "ssh": {}}'):
        path.write_text(damage)
        with pytest.raises(deploy.DeployError, match="websocket-proxy-deploy.json is damaged"):
            deploy.load_record(root)
