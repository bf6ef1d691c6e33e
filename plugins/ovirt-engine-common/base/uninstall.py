"""Uninstall manifests: the files (with sha256) and folders this setup run created or changed, by group.

The manifest is written in CLEANUP as an element of the run's transaction, so a failure after it (a later
CLEANUP event, PRE_TERMINATE, TERMINATE, REBOOT, a signal) takes it away with the changes it describes."""
from __future__ import annotations

import datetime as dt

from ovcommon import paths
from ovsetup import manifest
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage
from ovsetup.core.transaction import Change, FileWrite, sha256_file
from ovsetup.options import SQLiteOptionWrite


def _planned(plugin: Plugin) -> list[Change]:
    if not any(c.action in ("create", "change") for c in plugin.transaction.changes):
        return []
    return [Change(str(paths.UNINSTALL_DIR / "*-uninstall.conf"), "create", 0o600,
                   summary="uninstall manifest of this run's files")]


class UninstallPlugin(Plugin):
    @event(Stage.CLEANUP, priority=Priority.LOW, condition=lambda self: self.context.action == "setup",
           planned=_planned)
    def write_manifest(self) -> None:
        writes = [el for el in self.transaction.elements
                  if isinstance(el, FileWrite | SQLiteOptionWrite) and el.committed and el.changed]
        if (self.context.error is not None and not self.context.kept) or not writes:
            return
        root = self.context.root
        files = [manifest.Recorded(w.target, sha256_file(w.path), w.group) for w in writes]
        dirs: dict[str, list[str]] = {}
        for write in writes:
            dirs.setdefault(write.group, []).extend("/" + str(d.relative_to(root.base)) for d in write.created_dirs)
        dirs = {group: sorted(set(folders)) for group, folders in dirs.items() if folders}
        stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
        target = root.path(paths.UNINSTALL_DIR / f"{stamp}-uninstall.conf")
        counter = 1
        while target.exists():
            target = root.path(paths.UNINSTALL_DIR / f"{stamp}-{counter}-uninstall.conf")
            counter += 1
        # part of the transaction: a failure later in the run removes it with the files it names
        self.transaction.append(FileWrite(target, manifest.render(files, dirs), mode=0o600,
                                          target=str(paths.UNINSTALL_DIR / target.name)))
        self.log.debug("uninstall manifest %s", target)
