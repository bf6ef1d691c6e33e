"""The run and its abort path: a failure or a signal at any moment undoes the transaction, uninstall
manifest included, and a second signal cannot cut the undo short."""
from __future__ import annotations

import os
import signal

import pytest

from ovcommon.paths import Root
from ovcommon.resources import resource_dir
from ovsetup.core.context import Context
from ovsetup.core.environment import Environment
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage
from ovsetup.core.transaction import FileWrite


def files(root) -> dict[str, tuple[bytes, int]]:
    """Every file below root with its bytes and mode, but the run's answer files."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode) for p in sorted(root.rglob("*"))
            if p.is_file() and "setup/answers" not in str(p)}


def sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class Signalling:
    """A transaction element whose undo receives a second SIGTERM."""

    def prepare(self) -> None: ...
    def commit(self) -> None: ...

    def abort(self) -> None:
        sigterm()


def writer(root, *middle):
    class Writer(Plugin):
        @event(Stage.MISC)
        def write(self):
            self.transaction.append(FileWrite(root / "kept.conf", "changed\n"))
            for element in middle:
                self.transaction.append(element)
            self.transaction.append(FileWrite(root / "new" / "file", "x"))
    return Writer


@pytest.fixture
def root(tmp_path):
    (tmp_path / "kept.conf").write_text("original\n")
    return tmp_path


@pytest.mark.parametrize("moment", ["snapshot", "changes"])
def test_sigterm_between_events_goes_through_the_abort_path(root, monkeypatch, moment):
    """SIGTERM while the environment is snapshot or its changes are compared (between two events)."""
    armed = []
    real = getattr(Environment, moment)

    def signalled(self, *args):
        if armed:
            armed.clear()
            sigterm()
        return real(self, *args)

    class Arm(Plugin):
        @event(Stage.CLOSEUP)
        def arm(self):
            armed.append(True)

    monkeypatch.setattr(Environment, moment, signalled)
    before = files(root)
    ctx = Context(root=Root(root), action="test")
    ctx.add_plugin(writer(root))
    ctx.add_plugin(Arm)
    assert ctx.run() == 1
    assert "SIGTERM" in str(ctx.error) and ctx.restored
    assert files(root) == before


def test_sigterm_in_the_run_loop_between_two_events(root, monkeypatch):
    """The run's own loop, outside any event, reads the stage's info between two events."""
    armed = []
    real = Stage.info

    def info(stage):
        if armed:
            armed.clear()
            sigterm()
        return real.fget(stage)

    class Arm(Plugin):
        @event(Stage.CLOSEUP, priority=Priority.FIRST)
        def arm(self):
            armed.append(True)

        @event(Stage.CLOSEUP, priority=Priority.LAST)
        def later(self):
            raise AssertionError("not reached: the run was interrupted before")

    monkeypatch.setattr(Stage, "info", property(info))
    before = files(root)
    ctx = Context(root=Root(root), action="test")
    ctx.add_plugin(writer(root))
    ctx.add_plugin(Arm)
    assert ctx.run() == 1
    assert "SIGTERM" in str(ctx.error) and ctx.restored
    assert files(root) == before


def test_signal_after_the_manifest_and_a_second_during_the_undo(root):
    """The real uninstall plugin writes its manifest at CLEANUP 9000; a SIGTERM after it, and another
    while undoing, leave no manifest and every file as it was."""

    class Kill(Plugin):
        @event(Stage.CLEANUP, priority=Priority.LOW + 1)
        def kill(self):
            sigterm()

    before = files(root)
    ctx = Context(root=Root(root), action="setup", accept_defaults=True)
    ctx.load_plugins(resource_dir("plugins"), ["ovirt-engine-common"])
    ctx.env.supply("OVESETUP_DIALOG/confirmSettings", True)
    ctx.add_plugin(writer(root, Signalling()))
    ctx.add_plugin(Kill)
    assert ctx.run() == 1
    assert "SIGTERM" in str(ctx.error)
    assert ctx.restored
    assert files(root) == before
    assert not (root / "etc/ovirt-engine/uninstall.d").exists()
