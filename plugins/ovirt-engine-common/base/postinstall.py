"""otopi's post-install file, `/etc/ovirt-engine-setup.conf.d/20-setup-ovirt-post.conf`: the keys marked
`postinstall` with their current values, so a re-run asks nothing already answered. The core reads
`/etc/ovirt-engine-setup.conf.d/*.conf` before every run."""
from __future__ import annotations

from ovcommon import paths
from ovsetup.core.config import render_answer_file
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Priority, Stage
from ovsetup.core.transaction import FileWrite

HEADER = "# Written by engine-setup: the answers a re-run reuses\n"


class PostInstallPlugin(Plugin):
    @event(Stage.MISC, priority=Priority.LOW, condition=lambda self: self.context.action == "setup")
    def write(self) -> None:
        entries = {key.name: self.env[key.name] for key in self.context.keys.values()
                   if key.postinstall and not key.secret and self.env.get(key.name) is not None}
        self.transaction.append(FileWrite(self.context.root.path(paths.POST_INSTALL_CONFIG),
                                          render_answer_file(entries, HEADER), mode=0o644,
                                          target=str(paths.POST_INSTALL_CONFIG)))
