"""`--dry-run`: after the stages through MISC and the listing of what later events would do, the report
of what a real run would change. Nothing below the root is written."""
from __future__ import annotations

from ovsetup import dryrun
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage


class DryRunPlugin(Plugin):
    @event(Stage.TERMINATE, priority=Priority.LAST,  # before the last line and the log's end
           condition=lambda self: self.context.dry_run and self.context.error is None)
    def report(self) -> None:
        dryrun.report(self.context, self.context.stdout)


PLUGINS = (DryRunPlugin,)
