"""The reference part of `engine-setup --help` and `engine-cleanup --help`, generated from the plugins'
key tables (so it cannot drift from them), plus the modes, exit codes and files a user looks up."""
from __future__ import annotations

import argparse
import inspect
import textwrap
from pathlib import Path

from ovcommon import paths
from ovcommon.paths import Root
from ovcommon.resources import resource_dir

from .core.context import Context
from .core.environment import EnvKey, format_typed

WIDTH = 100

MODES = """\
deployment modes (where the proxy runs; browsers follow the engine option WebSocketProxy):
  this host   OVESETUP_CONFIG/websocketProxyConfig=bool:True (the default answer): the proxy runs
              here; WebSocketProxy becomes <OVESETUP_CONFIG/fqdn>:<port>
  Remote      websocketProxyConfig=bool:False, OVESETUP_CONFIG/websocketProxyDeploy=str:Remote: one
              separate machine, deployed with Ansible over SSH; WebSocketProxy becomes <fqdn>:<port>
  Hosts       websocketProxyDeploy=str:Hosts: every hypervisor host, deployed with Ansible over SSH;
              WebSocketProxy becomes Host:<port> (the browser uses the VM's host)
  None        websocketProxyDeploy=str:None: no proxy is configured, WebSocketProxy is left alone
"""

EXIT_CODES = """\
exit codes:
  0  success (the last line says: Execution of {action} completed successfully)
  1  the run failed, was cancelled, was interrupted or lacked an answer without a terminal; the
     console says whether every file was put back as it was, and where the log is
  2  a bad command line, environment value or answer file: nothing was started
"""

FILES = f"""\
files (below --root):
  read first  {paths.SETUP_CONFIG} and {paths.SETUP_CONFIG_D}/*.conf (earlier runs'
              answers: {paths.POST_INSTALL_CONFIG.name}), then --config-append, then
              --otopi-environment
  log         {paths.LOG_DIR}/ovirt-engine-{{action}}-<time>-<random>.log (0600, secrets
              filtered), or --log FILE
  answers     {paths.ANSWERS_DIR}/<time>-{{action}}.conf (0600): what this run was
              told or answered, to replay with --config-append; --generate-answer FILE writes a copy
"""


def describe(key: EnvKey) -> str:
    """One key: its name, type and default, what is done with it, and its help text."""
    default = "unset" if key.default is None else format_typed(key.default).partition(":")[2]
    notes = [key.type, f"default {default}"]
    notes += [label for flag, label in ((key.secret, "secret: never logged"), (key.answerfile, "answer file"),
                                        (key.postinstall, "kept for re-runs")) if flag]
    body = textwrap.fill(key.help, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6, break_on_hyphens=False)
    return f"  {key.name} ({', '.join(notes)})\n{body}\n"


def reference(action: str, groups: list[str]) -> str:
    """Every key of the plugin groups, by plugin, then the modes (setup), exit codes and files."""
    plugins_dir = resource_dir("plugins")
    context = Context(root=Root(), action=action)
    context.load_plugins(plugins_dir, groups)
    parts = ['environment keys (--otopi-environment="KEY=type:value ...", or an answer file\'s\n'
             "[environment:default] section):\n"]
    by_folder: dict[Path, list[EnvKey]] = {}
    for plugin in context.plugins:
        if type(plugin).KEYS:
            folder = Path(inspect.getfile(type(plugin))).parent.relative_to(plugins_dir)
            by_folder.setdefault(folder, []).extend(type(plugin).KEYS)
    parts += [f" plugins/{folder}:\n" + "".join(describe(key) for key in keys) for folder, keys in by_folder.items()]
    if action == "setup":
        parts.append(MODES)
    parts += [EXIT_CODES.format(action=action), FILES.format(action=action)]
    return "\n".join(parts)


class TeachingParser(argparse.ArgumentParser):
    """An argument parser whose help ends with the generated reference (built only when help is shown)."""

    def __init__(self, *args: object, action: str, groups: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._reference = (action, groups)

    def format_help(self) -> str:
        return super().format_help() + "\n" + reference(*self._reference)
