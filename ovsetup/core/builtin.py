"""The core's own events: log file, config-file sections in otopi's precedence, key defaults and
checks, the main transaction, and the `OTOPI_FORCE_FAIL_STAGE` debug hook."""
from __future__ import annotations

import logging
import os
import platform
import sys

from . import log as logsetup
from .errors import SetupError, UsageError
from .events import EventSpec, event
from .plugin import Plugin
from .sequence import Event
from .stages import Priority, Stage

log = logging.getLogger(__name__)


class CorePlugin(Plugin):
    """otopi precedence: enforce > override > init > command line > default > plugin defaults."""

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self.handlers: list[logging.Handler] = []

    @event(Stage.BOOT, name="otopi.core.log.init", priority=Priority.FIRST)
    def open_log(self) -> None:
        if self.context.log_file is not None:
            self.handlers.append(logsetup.setup_file(self.context.log_file, self.context.secrets))
        log.debug("SYSTEM INFORMATION - python %s %s, host %s, uid %d",
                  sys.executable, platform.python_version(), platform.node(), os.getuid())
        for stage, events in self.context.sequence().items():
            for ev in events:
                log.debug("SEQUENCE %s METHOD %s", stage.info.id, ev.label)
        self.context.log_environment(sorted(self.env.items()))

    @event(Stage.INIT, name="otopi.core.config.init", priority=Priority.HIGH - 10)
    def apply_default_and_init_sections(self) -> None:
        for key, value in self.context.config.sections["default"].items():
            if key not in self.env:
                self.env.supply(key, value)
        for key, value in self.context.config.sections["init"].items():
            self.env.supply(key, value)

    @event(Stage.INIT, name="otopi.core.keys.defaults")
    def apply_key_defaults(self) -> None:
        for key in self.context.keys.values():
            self.env.setdefault(key.name, key.default)

    @event(Stage.SETUP, priority=Priority.HIGH)
    def show_files(self) -> None:
        for warning in self.context.config.warnings:
            log.warning("%s", warning)
        if self.context.config.files:
            log.info("Configuration files: %s", ", ".join(str(p) for p in self.context.config.files))
        if self.context.log_file is not None:
            log.info("Log file: %s", self.context.log_file)

    @event(Stage.CUSTOMIZATION, name="otopi.core.config.override", priority=Priority.HIGH)
    def apply_override_section(self) -> None:
        for key, value in self.context.config.sections["override"].items():
            self.env.supply(key, value)

    @event(Stage.CUSTOMIZATION, name="otopi.core.config.enforce", priority=Priority.LOW)
    def apply_enforce_section(self) -> None:
        for key, value in self.context.config.sections["enforce"].items():
            self.env.supply(key, value)

    @event(Stage.VALIDATION, name="otopi.core.keys.validation", priority=Priority.FIRST)
    def validate_keys(self) -> None:
        problems = self.context.check_keys()
        if problems:
            raise UsageError("; ".join(problems))

    @event(Stage.TRANSACTION_BEGIN, name="otopi.core.transaction.begin")
    def begin_transaction(self) -> None:
        self.transaction.prepare()

    @event(Stage.TRANSACTION_END, name="otopi.core.transaction.end")
    def commit_transaction(self) -> None:
        self.transaction.commit()

    @event(Stage.TERMINATE, name="otopi.core.log.close", priority=Priority.LAST + 1000)
    def close_log(self) -> None:
        logsetup.close_handlers(self.handlers)
        self.handlers.clear()


def force_fail_event() -> Event | None:
    """`OTOPI_FORCE_FAIL_STAGE=STAGE_MISC` (or `misc`) fails that stage at `OTOPI_FORCE_FAIL_PRIORITY`
    (default: last), to prove that a failure undoes everything."""
    wanted = os.environ.get("OTOPI_FORCE_FAIL_STAGE")
    if not wanted:
        return None
    name = wanted.upper().removeprefix("STAGE_")
    try:
        stage = Stage[name]
    except KeyError:
        raise UsageError(f"OTOPI_FORCE_FAIL_STAGE: unknown stage {wanted[:20]!r} (use one of "
                         f"{', '.join('STAGE_' + s.name for s in Stage)})") from None
    text = os.environ.get("OTOPI_FORCE_FAIL_PRIORITY", str(Priority.LAST))
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise UsageError(f"OTOPI_FORCE_FAIL_PRIORITY: {text[:20]!r} is not an integer (e.g. 9001)")
    priority = int(text)

    def fail() -> None:
        raise SetupError(f"failure forced at stage {name} by OTOPI_FORCE_FAIL_STAGE")

    return Event(EventSpec(stage, "otopi.debug.force_fail", priority=priority), fail, None,
                 "ovsetup.core.builtin.force_fail")
