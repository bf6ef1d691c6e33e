"""Uninstall manifests: the files (with sha256) and folders this run created or changed, by group."""
from __future__ import annotations

import configparser
import datetime as dt
import io

from ovsetup import paths
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage
from ovsetup.core.transaction import FileWrite, atomic_write, make_parents, sha256_file

GROUP_DESCRIPTIONS = {"core": "Core files", "ca_pki": "Engine PKI", "ca_pki_wsp": "WSP PKI keys"}


class UninstallPlugin(Plugin):
    @event(Stage.CLEANUP, priority=Priority.LOW)
    def write_manifest(self) -> None:
        writes = [el for el in self.transaction.elements
                  if isinstance(el, FileWrite) and el.committed and el.changed]
        if (self.context.error is not None and not self.context.kept) or not writes:
            return
        manifest = configparser.RawConfigParser()
        manifest.optionxform = str  # type: ignore[assignment,method-assign]
        root = self.context.root
        for group in sorted({w.group for w in writes}):
            section = f"file_group_{group}"
            manifest.add_section(section)
            manifest.set(section, "description", GROUP_DESCRIPTIONS.get(group, group))
            manifest.set(section, "optional", "False")
            members = [w for w in writes if w.group == group]
            for index, write in enumerate(members):
                manifest.set(section, f"file.{index:03d}.name", write.target)
                manifest.set(section, f"file.{index:03d}.sha256", sha256_file(write.path))
            folders = sorted({"/" + str(d.relative_to(root.base)) for w in members for d in w.created_dirs})
            for index, folder in enumerate(folders):
                manifest.set(section, f"dir.{index:03d}.name", folder)
        text = io.StringIO()
        manifest.write(text)
        stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
        target = root.path(paths.UNINSTALL_DIR / f"{stamp}-uninstall.conf")
        counter = 1
        while target.exists():
            target = root.path(paths.UNINSTALL_DIR / f"{stamp}-{counter}-uninstall.conf")
            counter += 1
        make_parents(target)
        atomic_write(target, text.getvalue().encode(), 0o600)
        self.log.debug("uninstall manifest %s", target)
