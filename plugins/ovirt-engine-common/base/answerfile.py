"""Answer files: every run writes one (0600) under the answers folder, and to --generate-answer.

They hold what the user answered or set (the feature keys marked `answerfile`, and the dialog's
`QUESTION/<n>/<NAME>` keys), never defaults, so defaults can improve later. Written at CLEANUP, so
also after a failed run.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from ovcommon import paths
from ovsetup.core.config import render_answer_file
from ovsetup.core.environment import EnvKey
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage
from ovsetup.core.transaction import Change, atomic_write, make_parents
from ovsetup.names import ANSWER_FILE

ANSWER_FILE_KEY = "OVESETUP_CORE/answerFile"


class AnswerFilePlugin(Plugin):
    KEYS = (EnvKey(ANSWER_FILE_KEY, "str", help="Also write this run's answers to this file (0600); set by "
                   "--generate-answer. Every run writes them to /var/lib/ovirt-engine/setup/answers/ too."),)

    def answers(self) -> dict[str, object]:
        keys = self.context.keys
        return {
            name: value for name, value in self.env.items()
            if name.startswith("QUESTION/")
            or (name in self.env.user_keys and name in keys and keys[name].answerfile and value is not None)
        }

    def planned(self) -> list[Change]:
        pattern = str(paths.ANSWERS_DIR / f"*-{self.context.action}*.conf")  # <time>-setup[-n].conf
        targets = [Change(pattern, "create", 0o600, summary="this run's answer file")]
        if self.env.get(ANSWER_FILE_KEY):
            given = Path(self.env[ANSWER_FILE_KEY])
            old = given.read_bytes() if given.is_file() else None
            new = render_answer_file(self.answers()).encode()
            if old != new:
                targets.append(Change(str(given), "create" if old is None else "change", 0o600, old, new))
        return targets

    @event(Stage.CLEANUP, name=ANSWER_FILE, priority=Priority.LAST, planned=planned)
    def write(self) -> None:
        content = render_answer_file(self.answers()).encode()
        stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
        folder = self.context.root.path(paths.ANSWERS_DIR)
        standard = folder / f"{stamp}-{self.context.action}.conf"
        counter = 1
        while standard.exists():
            standard = folder / f"{stamp}-{self.context.action}-{counter}.conf"
            counter += 1
        targets = [standard]
        if self.env.get(ANSWER_FILE_KEY):
            targets.append(Path(self.env[ANSWER_FILE_KEY]))
        for target in targets:
            try:
                make_parents(target, 0o700)
                atomic_write(target, content, 0o600)
                self.log.info("Generating answer file '%s'", target)
            except OSError as exc:
                self.log.warning("Cannot write answer file %s: %s", target, exc.strerror)
