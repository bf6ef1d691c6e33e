"""One check over every shipped plugin: it loads, its metadata is sound, and the sequence builds."""
from __future__ import annotations

import inspect
import re

import pytest

from ovcommon.paths import Root
from ovcommon.resources import resource_dir
from ovsetup.cli import SETUP_GROUPS
from ovsetup.core.context import Context

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
