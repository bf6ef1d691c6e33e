"""engine-setup's common base: answer files, the post-install file, uninstall manifests, the preview,
summary and last line, the dry run's report."""
from .answerfile import AnswerFilePlugin
from .dialogs import DialogsPlugin
from .dryrun import DryRunPlugin
from .postinstall import PostInstallPlugin
from .uninstall import UninstallPlugin

PLUGINS = (AnswerFilePlugin, DialogsPlugin, PostInstallPlugin, UninstallPlugin, DryRunPlugin)
