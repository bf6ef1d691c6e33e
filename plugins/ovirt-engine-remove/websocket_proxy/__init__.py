"""engine-cleanup of the WebSocket proxy: stop and disable the service, remove what setup recorded in
the uninstall manifests (a file changed since setup only when the admin says so), and set
`WebSocketProxy` back to `Off`. Removals go through the transaction, so a failed cleanup restores."""
from __future__ import annotations

import os
import signal
from pathlib import PurePosixPath

from ovcommon import paths
from ovsetup import manifest, names, options, pgstore, service
from ovsetup.core.environment import EnvKey
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage
from ovsetup.core.transaction import FileRemove

REMOVE_WSP = "OVESETUP_REMOVE/removeWsp"
REMOVE_CHANGED = "OVESETUP_REMOVE/removeChangedFiles"


def _removing(plugin: Plugin) -> bool:
    return bool(plugin.env[REMOVE_WSP])


class RemovePlugin(Plugin):
    KEYS = (
        EnvKey(REMOVE_WSP, "bool", answerfile=True, summary="Remove the WebSocket proxy",
               help="Remove the WebSocket proxy: its service, the files setup recorded, the proxies it deployed, "
                    "and WebSocketProxy back to Off. Asked, default No."),
        EnvKey(REMOVE_CHANGED, "bool", answerfile=True,
               help="Also remove recorded files that changed since setup wrote them. Asked when there are such "
                    "files, default No (they are kept)."),
    )
    recorded: manifest.Manifests
    changed: list[str]
    removed: list[str]
    closed: list[str] = []  # the firewalld zones the port was closed in
    created_user = ""  # the service user setup created, from its record

    @event(Stage.SETUP)
    def read_manifests(self) -> None:
        self.recorded = manifest.read(self.context.root)
        record = self.context.root.path(service.CREATED_USER_RECORD)
        if str(service.CREATED_USER_RECORD) in self.recorded.files and record.is_file():
            self.created_user = record.read_text().strip()
        self.changed = sorted(t for t, entry in self.recorded.files.items()
                              if manifest.changed(self.context.root, entry))

    @event(Stage.CUSTOMIZATION, name=names.WSP_REMOVE_CUSTOMIZATION)
    def ask(self) -> None:
        if self.env[REMOVE_WSP] is None:
            self.env.supply(REMOVE_WSP, self.dialog.query_boolean(
                "OVESETUP_REMOVE_WSP", "Do you want to remove the WebSocket proxy? (@VALUES@) [@DEFAULT@]: ",
                env_key=REMOVE_WSP, default=False))
        if self.env[REMOVE_WSP] and self.changed and self.env[REMOVE_CHANGED] is None:
            self.dialog.note("These files were changed since setup wrote them:\n" + "\n".join(self.changed))
            self.env.supply(REMOVE_CHANGED, self.dialog.query_boolean(
                "OVESETUP_REMOVE_CHANGED_FILES", "Remove them anyway? (@VALUES@) [@DEFAULT@]: ",
                env_key=REMOVE_CHANGED, default=False))

    @event(Stage.EARLY_MISC, condition=lambda self: _removing(self)
           and service.setup_manages_service(self.context.owns_system))
    def stop_service(self) -> None:
        self.log.info("Stopping %s", paths.SERVICE_NAME)
        if service.run(["systemctl", "show", "-P", "LoadState", paths.SERVICE_NAME]).strip() != "not-found":
            service.run(["systemctl", "disable", "--now", paths.SERVICE_NAME])
        if service.firewalld_running():
            self.closed = service.close_service(paths.SERVICE_NAME)

    @event(Stage.CLOSEUP, condition=lambda self: _removing(self)
           and service.setup_manages_service(self.context.owns_system))
    def forget_unit_and_user(self) -> None:
        """After the files are gone: systemd forgets the unit; the user setup created (recorded) goes."""
        service.run(["systemctl", "daemon-reload"])
        record = str(service.CREATED_USER_RECORD)
        if record in self.removed and self.created_user and service.user_exists(self.created_user):
            self.log.info("Removing the user %s, which setup created", self.created_user)
            service.run(["userdel", self.created_user])

    @event(Stage.EARLY_MISC, condition=lambda self: _removing(self)
           and not service.setup_manages_service(self.context.owns_system))
    def stop_started_by_hand(self) -> None:
        pid = service.running_proxy(self.context.root.path(paths.PIDFILE))
        if pid is not None:
            self.log.info("Stopping the running proxy (pid %d)", pid)
            os.kill(pid, signal.SIGTERM)

    @event(Stage.MISC, name=names.WSP_REMOVE, condition=_removing)
    def remove(self) -> None:
        root = self.context.root
        keep = set() if self.env[REMOVE_CHANGED] else set(self.changed)
        self.removed = sorted(t for t in self.recorded.files if t not in keep and root.path(t).is_file())
        self.log.info("Removing %d files", len(self.removed))
        for target in self.removed:
            self.transaction.append(FileRemove(root.path(target), target))
        for source in self.recorded.sources:
            self.transaction.append(FileRemove(source))
        if str(paths.OPTIONS_DB) not in self.removed:
            store = options.open_store(root, pgstore.from_keys(self.env))
            if store.get(options.WEBSOCKET_PROXY) != "Off":
                self.transaction.append(store.update(options.WEBSOCKET_PROXY, "Off"))

    @event(Stage.CLOSEUP, priority=Priority.HIGH, condition=_removing)
    def remove_empty_folders(self) -> None:
        for folder in sorted(self.recorded.dirs, key=lambda d: len(PurePosixPath(d).parts), reverse=True):
            path = self.context.root.path(folder)
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    @event(Stage.CLOSEUP, after=(names.SUMMARY_START,), before=(names.SUMMARY_END,), condition=_removing)
    def summary(self) -> None:
        if not self.recorded.sources:
            self.dialog.note("Nothing to remove: no uninstall manifest; WebSocketProxy is Off")
            return
        self.dialog.note(f"WebSocket proxy removed: {len(self.removed)} files; WebSocketProxy is Off")
        if self.closed:
            self.dialog.note(f"Firewall: {paths.SERVICE_NAME} closed in the zones {', '.join(self.closed)}")
        kept = [t for t in self.changed if t not in self.removed]
        if kept:
            self.dialog.note("Kept, changed since setup:\n" + "\n".join(kept))


PLUGINS = (RemovePlugin,)
