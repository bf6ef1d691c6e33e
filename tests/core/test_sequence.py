import pytest

from ovcommon.paths import Root
from ovsetup.core.context import Context
from ovsetup.core.errors import PluginError
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage

order: list[str] = []


class Early(Plugin):
    @event(Stage.MISC, name="b.second", after=("a.first",))
    def second(self):
        order.append("second")

    @event(Stage.CUSTOMIZATION)
    def ask(self):
        order.append("ask")


class Late(Plugin):
    @event(Stage.MISC, name="a.first")
    def first(self):
        order.append("first")

    @event(Stage.MISC, priority=Priority.LOW)
    def last(self):
        order.append("last")

    @event(Stage.MISC, priority=Priority.HIGH, condition=lambda self: False)
    def skipped(self):
        order.append("skipped")


def context(*plugins):
    ctx = Context(root=Root(), action="test")
    for plugin in plugins:
        ctx.add_plugin(plugin)
    return ctx


def test_stage_priority_and_before_after_order():
    order.clear()
    assert context(Early, Late).run() == 0
    assert order == ["ask", "first", "second", "last"]


def test_order_does_not_depend_on_load_order():
    first = [ev.qualname for evs in context(Early, Late).sequence().values() for ev in evs]
    second = [ev.qualname for evs in context(Late, Early).sequence().values() for ev in evs]
    assert first == second


def test_bare_string_before_is_refused():
    with pytest.raises(PluginError, match="must be a tuple"):
        event(Stage.MISC, before="x.y")  # type: ignore[arg-type]


def test_cycle_is_reported():
    class Cyclic(Plugin):
        @event(Stage.MISC, name="c.one", after=("c.two",))
        def one(self): ...

        @event(Stage.MISC, name="c.two", after=("c.one",))
        def two(self): ...

    with pytest.raises(PluginError, match="cyclic"):
        context(Cyclic).sequence()


def test_after_an_event_of_later_priority_is_an_error():
    class Contradiction(Plugin):
        @event(Stage.MISC, name="p.late", priority=Priority.LOW)
        def late(self): ...

        @event(Stage.MISC, after=("p.late",))
        def early(self): ...

    with pytest.raises(PluginError, match="later priority"):
        context(Contradiction).sequence()


def test_duplicate_event_names_and_keys_are_refused():
    class One(Plugin):
        @event(Stage.MISC, name="dup.name")
        def x(self): ...

    class Two(Plugin):
        @event(Stage.MISC, name="dup.name")
        def y(self): ...

    with pytest.raises(PluginError, match="duplicate event name"):
        context(One, Two).sequence()


def test_failure_skips_if_success_stages_but_runs_cleanup():
    ran = []

    class Failing(Plugin):
        @event(Stage.MISC)
        def boom(self):
            raise RuntimeError("disk on fire")

        @event(Stage.CLOSEUP)
        def closeup(self):
            ran.append("closeup")

        @event(Stage.CLEANUP)
        def cleanup(self):
            ran.append("cleanup")

    ctx = context(Failing)
    assert ctx.run() == 1
    assert ran == ["cleanup"]
    assert str(ctx.error) == "disk on fire"
