"""engine-setup's common base: answer files, uninstall manifests, the preview, summary and last line."""
from .answerfile import AnswerFilePlugin
from .dialogs import DialogsPlugin
from .uninstall import UninstallPlugin

PLUGINS = (AnswerFilePlugin, DialogsPlugin, UninstallPlugin)
