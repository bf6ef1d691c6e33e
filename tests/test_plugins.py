"""One check over every shipped plugin: it loads, its metadata is sound, and the sequence builds; the proxy
plugin's choice of what a re-run does to a running unit."""
from __future__ import annotations

import inspect
import re

import pytest

from ovcommon.paths import Root
from ovcommon.resources import resource_dir
from ovsetup.cli import SETUP_GROUPS
from ovsetup.core.context import Context
from tests.test_service import fake_systemctl  # noqa: F401 (fixture)

GROUPS = sorted(p.name for p in resource_dir("plugins").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def context() -> Context:
    ctx = Context(root=Root(), action="test")
    ctx.load_plugins(resource_dir("plugins"), GROUPS)
    return ctx


def test_setup_groups_exist():
    assert set(SETUP_GROUPS) <= set(GROUPS)


def test_every_plugin_has_a_docstring_and_declares_its_keys_once(context):
    for plugin in context.plugins:
        module = inspect.getmodule(type(plugin))
        assert (module.__doc__ or type(plugin).__doc__), f"{type(plugin).__qualname__} has no docstring"
    names = [key.name for plugin in context.plugins for key in type(plugin).KEYS]
    assert len(names) == len(set(names))


def test_every_key_explains_itself_in_a_sentence(context):
    """`--help` prints these texts (tests/test_help.py): each is a sentence, not a placeholder."""
    for plugin in context.plugins:
        for key in type(plugin).KEYS:
            text = key.help.strip()
            assert len(text) > 20 and text[0].isupper() and text.endswith("."), f"{key.name}: help {text!r}"


def test_sequence_builds_and_every_before_after_target_exists(context):
    events = [ev for evs in context.sequence().values() for ev in evs]
    defined = {ev.spec.name for ev in events if ev.spec.name}
    referenced = {name for ev in events for name in ev.spec.before + ev.spec.after}
    assert referenced - defined == set()


def test_every_question_names_the_key_that_answers_it():
    """A question without a default must say which key answers it, so a run without a terminal can
    tell the admin what to set; every query call passes env_key (the dialog requires it)."""
    for path in resource_dir("plugins").rglob("*.py"):
        text = path.read_text()
        for call in re.finditer(r"\.query(?:_boolean)?\((.*?)\)\n", text, re.S):
            assert "env_key=" in call.group(1), f"{path}: a question without env_key"


@pytest.mark.usefixtures("fake_systemctl")
def test_the_proxy_plugin_plans_the_gentlest_step_for_what_the_run_changes(tmp_path):
    """The step (and so the dry run's line) from the running unit and the files this run writes: the port
    in the config it replaces, the version in the unit's status (a fake `systemctl` answers)."""
    from ovcommon import paths
    from ovsetup import service
    from ovsetup.core.transaction import FileWrite

    ctx = Context(root=Root(tmp_path / "root"), action="test", dry_run=True)
    ctx.load_plugins(resource_dir("plugins"), ["ovirt-engine-setup"])
    plugin = next(p for p in ctx.plugins if type(p).__name__ == "WebSocketProxyPlugin")
    config = ctx.root.path(paths.PROXY_SETUP_CONFIG)
    config.parent.mkdir(parents=True)
    config.write_text("PROXY_PORT=6100\nSSL_ONLY=True\n")
    state = tmp_path / "state"  # what the fake systemctl's `show` prints
    installed = service.installed_version()

    def plan(content: str, status: str, active: str = "active") -> str:
        state.write_text(f"ActiveState={active}\nMainPID=100\nStatusText={status}\n")
        ctx.transaction.elements.clear()
        ctx.transaction.append(FileWrite(config, content, target=str(paths.PROXY_SETUP_CONFIG)))
        ctx.transaction.prepare()  # record-only: reads what is there, writes nothing
        steps = [line for line in plugin._service_plan() if not line.startswith(("enable ", "add the firewalld "))]
        return steps[0] if steps else ""

    current = f"version {installed}; Listening on port 6100; 1 open session"
    assert plan("PROXY_PORT=6100\nSSL_ONLY=True\n", current) == ""
    assert plan("PROXY_PORT=6100\nSSL_ONLY=False\n", current).startswith(
        "reload the service ovirt-websocket-proxy: its configuration or certificates changed; open consoles stay")
    assert plan("PROXY_PORT=6200\nSSL_ONLY=True\n", current).startswith(
        "restart the service ovirt-websocket-proxy: its port changed")
    assert plan("PROXY_PORT=6100\nSSL_ONLY=True\n", "version 0.0.1; Listening on port 6100; 0 open sessions") \
        .startswith(f"hand over to the new version {installed} (SIGUSR2 to the main process of ovirt-websocket-proxy")
    assert plan("PROXY_PORT=6200\nSSL_ONLY=True\n", "", "inactive") == \
        "start the service ovirt-websocket-proxy: it is not running"
    assert config.read_text() == "PROXY_PORT=6100\nSSL_ONLY=True\n"
