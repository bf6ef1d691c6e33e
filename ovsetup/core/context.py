"""The context: loads plugin groups, owns the environment, builds and runs the event sequence."""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

from ovcommon.paths import Root

from .config import ConfigValues
from .dialog import Dialog
from .environment import KEY_TYPES, Environment, EnvKey, secret_name
from .errors import Aborted, IncompleteError, Interrupted, PluginError, SetupError
from .plugin import Plugin
from .sequence import Event, build, collect
from .stages import Stage
from .transaction import Transaction

log = logging.getLogger(__name__)
KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*/[a-z][A-Za-z0-9]*$")
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Context:
    def __init__(self, *, root: Root, action: str, config: ConfigValues | None = None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None,
                 accept_defaults: bool = False, dry_run: bool = False) -> None:
        self.root = root
        self.action = action
        self.dry_run = dry_run  # run through MISC recording changes; list what later events would do
        self.planned: list[Any] = []  # a dry run's lines and Changes from events' `planned`
        self.config = config or ConfigValues()
        self.stdout = stdout or sys.stdout
        self.env = Environment()
        self.keys: dict[str, EnvKey] = {}
        self.plugins: list[Plugin] = []
        self.dialog = Dialog(self.env, stdin=stdin, stdout=self.stdout, accept_defaults=accept_defaults)
        self.transaction = Transaction(record_only=dry_run)
        self.error: SetupError | None = None
        self.restored = True  # False when undoing a failed run left something behind
        self.kept = False  # True when a failed run kept its changes (IncompleteError)
        self.log_file: Path | None = None
        self._secrets: tuple[int, list[str]] = (-1, [])
        self.stopping = False  # a failure or signal happened: later signals are ignored
        self.ignored_signals: list[str] = []
        from .builtin import CorePlugin, force_fail_event

        self.forced = force_fail_event()  # checked here, so a bad OTOPI_FORCE_FAIL_* is a usage error
        self.add_plugin(CorePlugin)

    @property
    def owns_system(self) -> bool:
        """Setup runs as root on the real system: it may create users and manage services."""
        return self.root.is_system and os.geteuid() == 0

    # -- plugins ---------------------------------------------------------------------------------
    def add_plugin(self, plugin_class: type[Plugin]) -> Plugin:
        plugin = plugin_class(self)
        for key in plugin_class.KEYS:
            if not KEY_NAME.match(key.name):
                raise PluginError(f"{plugin_class.__qualname__}: key {key.name!r} is not NAMESPACE/camelCase")
            if key.type not in KEY_TYPES:
                raise PluginError(f"{plugin_class.__qualname__}: key {key.name} has unknown type {key.type!r}")
            if key.name in self.keys:
                raise PluginError(f"{plugin_class.__qualname__}: key {key.name} is declared twice")
            self.keys[key.name] = key
        self.plugins.append(plugin)
        return plugin

    def load_plugins(self, plugin_dir: Path, groups: list[str]) -> None:
        """Load every package (a folder with `__init__.py`) below each group folder, in name order."""
        for group in groups:
            group_dir = plugin_dir / group
            if not group_dir.is_dir():
                raise PluginError(f"plugin group {group} is missing in {plugin_dir}")
            for package in _packages(group_dir):
                module = _load_package(package, f"ovsetup.plugins.{_ident(group)}."
                                       + ".".join(_ident(p) for p in package.relative_to(group_dir).parts))
                classes = getattr(module, "PLUGINS", None)
                if not classes:
                    raise PluginError(f"plugin package {package} defines no PLUGINS")
                for plugin_class in classes:
                    self.add_plugin(plugin_class)

    def sequence(self) -> dict[Stage, list[Event]]:
        events = [ev for plugin in self.plugins for ev in collect(plugin)]
        return build(events + [self.forced] if self.forced else events)

    # -- environment helpers ---------------------------------------------------------------------
    def secrets(self) -> list[str]:
        """Current values that must never reach the log. Asked for every log record: computed again only
        when the environment changed, so a run stays linear in the environment's size."""
        if self._secrets[0] != self.env.version:
            values = [value for name, value in self.env.items() if isinstance(value, str)
                      and (self.keys[name].secret if name in self.keys else secret_name(name))]
            self._secrets = (self.env.version, values)
        return self._secrets[1] + self.dialog.secrets

    def check_keys(self, names: list[str] | None = None) -> list[str]:
        """Every problem with declared keys' current values, all at once."""
        problems = []
        for name in names if names is not None else sorted(self.keys):
            if name in self.env and name in self.keys:
                problem = self.keys[name].check(self.env[name])
                if problem:
                    problems.append(problem)
        return problems

    def log_environment(self, changes: list[tuple[str, Any]]) -> None:
        for key, value in changes:
            shown = "***" if self.keys.get(key, None) and self.keys[key].secret else value
            log.debug("ENV %s=%s:%r", key, type(value).__name__, shown)

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Run every stage. From the first line to the last, a failure or a signal (SIGTERM, SIGHUP,
        SIGINT) goes through `_fail`: the first undoes the transaction, later signals are ignored.

        A dry run runs the stages through MISC and TERMINATE (which only reports and closes the log); of
        the stages between, and of every event that acts outside the transaction, it lists what they would
        do (`planned`)."""
        steps = [(stage, ev) for stage, events in self.sequence().items() for ev in (None, *events)
                 if not self._skipped_by_dry_run(stage, ev)]
        done = 0
        previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED_SIGNALS}
        try:
            while done < len(steps):
                try:
                    while done < len(steps):
                        stage, ev = steps[done]
                        done += 1
                        if ev is None:
                            self._guarded(stage, self._stage_header, stage)
                        elif not (stage.info.if_success and self.error):
                            self._guarded(stage, self._run_event, stage, ev)
                except Interrupted as signalled:  # the one signal that raises, come between two steps
                    self._fail(steps[done - 1][0], signalled)
            self.stopping = True  # the run is over: nothing left for a signal to stop
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.error.exit_code if self.error else 0

    def _skipped_by_dry_run(self, stage: Stage, ev: Event | None) -> bool:
        """In a dry run, the stages after MISC (before TERMINATE) show no header and run only the events
        that say what they would do."""
        return self.dry_run and Stage.MISC < stage < Stage.TERMINATE and (ev is None or ev.spec.planned is None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stopping:  # already undoing or undone: a second signal must not cut the undo short
            self.ignored_signals.append(name)
            return
        self.stopping = True
        raise Interrupted(f"interrupted by signal {name}")

    def _guarded(self, stage: Stage, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:  # every failure goes through the one error path
            self._fail(stage, exc)

    def _stage_header(self, stage: Stage) -> None:
        info = stage.info
        if info.if_success and self.error:
            return
        # as in otopi, the console never shows BOOT: it runs before the dialog is up
        log.log(logging.DEBUG if stage == Stage.BOOT else logging.INFO, "Stage: %s", info.description)
        log.debug("STAGE %s", info.id)

    def _run_event(self, stage: Stage, ev: Event) -> None:
        if ev.spec.condition is not None and not ev.spec.condition(ev.owner):
            log.debug("%s condition False", ev.qualname)
            return
        if self.dry_run and ev.spec.planned is not None:
            log.debug("Stage %s PLANNED %s", stage.info.id, ev.label)
            self.planned.extend(ev.spec.planned(ev.owner))
            return
        log.debug("Stage %s METHOD %s", stage.info.id, ev.label)
        before = self.env.snapshot()
        try:
            ev.method()
        except Exception as exc:
            self._fail(stage, exc)
        self.log_environment(list(self.env.changes(before)))

    def outcome(self) -> str:
        """What a failed run left: the line the user reads last."""
        if self.kept:
            return "The files this run wrote are kept: run engine-setup again to finish."
        if self.restored:
            return "Every file this run changed is back as it was."
        return "Some changes could not be undone: see the log."

    def _fail(self, stage: Stage, exc: Exception) -> None:
        self.stopping = True
        if self.ignored_signals:
            log.debug("ignored while stopping: %s", ", ".join(self.ignored_signals))
            self.ignored_signals.clear()
        log.debug("exception in %s", stage.info.description, exc_info=True)
        error = exc if isinstance(exc, SetupError) else SetupError(str(exc) or type(exc).__name__)
        if isinstance(exc, Aborted):
            log.warning("Aborted: %s", error)
        else:
            log.error("Failed to execute stage '%s': %s", stage.info.description, error)
        if self.error is None:
            self.error = error
        if isinstance(error, IncompleteError) and self.transaction.committed:
            self.kept = True  # the changes were committed and are what a re-run builds on
        elif not self.transaction.abort():
            self.restored = False
        if stage >= Stage.PRE_TERMINATE:  # after the CLEANUP line that tells the user what was undone
            log.error("%s", self.outcome())


def _ident(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _packages(group_dir: Path) -> Iterator[Path]:
    for child in sorted(group_dir.iterdir()):
        if not child.is_dir() or child.name.startswith(("_", ".")):
            continue
        if (child / "__init__.py").is_file():
            yield child
        else:
            yield from _packages(child)


def _load_package(package: Path, name: str) -> ModuleType:
    parent = name.rpartition(".")[0]
    while parent and parent not in sys.modules:  # synthetic parents, so relative imports work
        sys.modules[parent] = ModuleType(parent)
        parent = parent.rpartition(".")[0]
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load plugin package {package}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
