"""The CONFIGURATION PREVIEW and its confirmation, the SUMMARY frame, and the run's last line."""
from __future__ import annotations

from ovcommon import paths
from ovsetup.core.config import read_config_files
from ovsetup.core.environment import EnvKey
from ovsetup.core.errors import Aborted
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage
from ovsetup.names import PREVIEW, SUMMARY_END, SUMMARY_START

CONFIRM = "OVESETUP_DIALOG/confirmSettings"
CONFIRM_PROMPTS = {"setup": "Please confirm installation settings (@VALUES@) [@DEFAULT@]: ",
                   "cleanup": "Do you want to proceed with the removal (@VALUES@) [@DEFAULT@]: "}


class DialogsPlugin(Plugin):
    KEYS = (EnvKey(CONFIRM, "bool", answerfile=True,
                   help="Go on after the configuration preview (True: OK, False: Cancel, nothing changes). Asked, "
                        "default OK; not asked by a re-run that changes nothing."),)

    @event(Stage.VALIDATION, name=PREVIEW, priority=Priority.LOW)
    def preview(self) -> None:
        self.dialog.note("\n--== CONFIGURATION PREVIEW ==--\n")
        for key in self.context.keys.values():
            value = self.env.get(key.name)
            if key.summary and value is not None:
                self.dialog.note(f"{key.summary:40}: {'********' if key.secret else value}")
        if self.env[CONFIRM] is None and self._as_recorded():
            self.dialog.note("The settings are those the last run recorded: nothing to confirm")
            self.env.supply(CONFIRM, True)  # recorded, as oVirt always does, so this run's answers replay
            return
        if self.context.dry_run:
            return  # nothing to confirm: a dry run changes nothing
        if self.env[CONFIRM] is None:
            confirmed = self.dialog.query_boolean(
                "OVESETUP_DIALOG_CONFIRM_SETTINGS",
                CONFIRM_PROMPTS.get(self.context.action, CONFIRM_PROMPTS["setup"]),
                env_key=CONFIRM, default=True, true="OK", false="Cancel")
            self.env.supply(CONFIRM, confirmed)
        if not self.env[CONFIRM]:
            raise Aborted("Configuration was rejected by user")

    def _as_recorded(self) -> bool:
        """A setup re-run that asked nothing and only repeats what the post-install file records."""
        post_install = self.context.root.path(paths.POST_INSTALL_CONFIG)
        if self.context.action != "setup" or not post_install.is_file() or any(
                name.startswith("QUESTION/") for name in self.env):
            return False
        recorded = read_config_files([post_install]).sections["default"]
        return all(self.env[key.name] == recorded.get(key.name) for key in self.context.keys.values()
                   if key.summary and key.name in self.env.user_keys)

    @event(Stage.CLOSEUP, name=SUMMARY_START)
    def summary_start(self) -> None:
        self.dialog.note("\n--== SUMMARY ==--\n")

    @event(Stage.CLOSEUP, name=SUMMARY_END, after=(SUMMARY_START,))
    def summary_end(self) -> None:
        self.dialog.note("\n--== END OF SUMMARY ==--\n")

    @event(Stage.CLEANUP, priority=Priority.LAST)
    def where_is_the_log(self) -> None:
        if self.context.error is not None:
            self.log.error("%s", self.context.outcome())
        if self.context.log_file is not None:
            self.log.info("Log file is located at %s", self.context.log_file)

    @event(Stage.TERMINATE, priority=Priority.LAST + 500)  # after every other event, before the log closes
    def last_line(self) -> None:
        if self.context.error is None and self.context.dry_run:
            self.log.info("Dry run of %s completed: nothing was changed", self.context.action)
        elif self.context.error is None:
            self.log.info("Execution of %s completed successfully", self.context.action)
        else:
            self.log.error("Execution of %s failed", self.context.action)
