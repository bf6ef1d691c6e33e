"""`engine-setup --help` and `engine-cleanup --help` teach every key of their plugins' tables, the modes,
exit codes and files; they are generated from the tables, so this fails when a key is left out."""
from __future__ import annotations

import pytest

from ovcommon.paths import Root
from ovcommon.resources import resource_dir
from ovsetup.cli import CLEANUP_GROUPS, SETUP_GROUPS
from ovsetup.core.context import Context
from ovsetup.core.environment import format_typed
from tests.conftest import run


def keys(groups: list[str]) -> list:
    context = Context(root=Root(), action="test")
    context.load_plugins(resource_dir("plugins"), groups)
    return [key for plugin in context.plugins for key in type(plugin).KEYS]


@pytest.mark.parametrize(("command", "groups"), [("engine-setup", SETUP_GROUPS),
                                                 ("engine-cleanup", CLEANUP_GROUPS)])
def test_help_lists_every_key_with_type_default_and_meaning(command, groups):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # the help is wrapped: compare with whitespace folded
    table = keys(groups)
    assert len(table) >= 8
    for key in table:
        default = "unset" if key.default is None else format_typed(key.default).partition(":")[2]
        assert f"{key.name} ({key.type}, default {default}" in text, key.name
        assert " ".join(key.help.split()) in text, key.name
    action = command.removeprefix("engine-")
    for expected in ("exit codes: 0 success", "2 a bad command line",
                     f"/var/log/ovirt-engine/setup/ovirt-engine-{action}-<time>-<random>.log",
                     f"/var/lib/ovirt-engine/setup/answers/<time>-{action}.conf"):
        assert expected in text
    assert ("deployment modes" in text) == (command == "engine-setup")
    if command == "engine-setup":
        assert "Remote websocketProxyConfig=bool:False" in text and "WebSocketProxy becomes Host:<port>" in text
