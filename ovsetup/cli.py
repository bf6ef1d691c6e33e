"""`engine-setup`: the command line, turned into an environment, then the plugin run."""
from __future__ import annotations

import argparse
import datetime as dt
import secrets
import string
import sys
from pathlib import Path

from ovcommon import paths
from ovcommon.errors import entry
from ovcommon.paths import Root
from ovcommon.resources import resource_dir

from .core.config import ConfigValues, expand, read_config_files
from .core.context import Context
from .core.environment import parse_statements
from .core.errors import UsageError
from .core.log import close_handlers, setup_console
from .helptext import TeachingParser

SETUP_GROUPS = ["ovirt-engine-common", "ovirt-engine-setup"]
CLEANUP_GROUPS = ["ovirt-engine-common", "ovirt-engine-remove"]
ANSWER_FILE_KEY = "OVESETUP_CORE/answerFile"

DESCRIPTION = """\
Configure this machine's noVNC console WebSocket proxy: the engine PKI, the proxy's certificate and
config, its service and firewall files, and the engine option WebSocketProxy.

Every question can be answered ahead: with --otopi-environment="KEY=type:value ..." (types bool, int,
str, none, multi-str), or with an answer file (--config-append) such as the one each run writes to
/var/lib/ovirt-engine/setup/answers/.
"""

EPILOG = """\
examples:
  engine-setup --root /tmp/demo --accept-defaults \\
      --otopi-environment="OVESETUP_CONFIG/websocketProxyConfig=bool:True OVESETUP_CONFIG/fqdn=str:engine.example.test"
  engine-setup --config-append=/var/lib/ovirt-engine/setup/answers/20261128120000-setup.conf

debugging: OTOPI_FORCE_FAIL_STAGE=STAGE_MISC makes that stage fail, to check that a failed run
leaves every file as it was.
"""


CLEANUP_DESCRIPTION = """\
Remove this machine's noVNC console WebSocket proxy: stop and disable its service, remove the files
engine-setup recorded in /etc/ovirt-engine/uninstall.d/ (a file changed since setup wrote it is kept
unless OVESETUP_REMOVE/removeChangedFiles is True), and set WebSocketProxy back to Off.
"""
CLEANUP_EPILOG = """\
example:
  engine-cleanup --accept-defaults --otopi-environment="OVESETUP_REMOVE/removeWsp=bool:True"
"""


def parser(prog: str, description: str = DESCRIPTION, epilog: str = EPILOG, action: str = "setup",
           groups: list[str] = SETUP_GROUPS, dry_run: bool = True) -> argparse.ArgumentParser:
    p = TeachingParser(prog=prog, description=description, epilog=epilog, action=action, groups=groups,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="read and write every file below DIR instead of / (default /)")
    p.add_argument("--accept-defaults", action="store_true",
                   help="take the default answer of every question that has one")
    p.add_argument("--config-append", action="append", type=Path, default=[], metavar="FILE",
                   help="read answers from FILE (an otopi INI answer file); repeatable, later wins")
    p.add_argument("--otopi-environment", action="append", default=[], metavar="'KEY=type:value ...'",
                   help="set environment keys; applied after the answer files' default section")
    p.add_argument("--generate-answer", type=Path, metavar="FILE",
                   help="also write this run's answers to FILE (mode 0600)")
    p.add_argument("--log", type=Path, metavar="FILE", help="write the debug log to FILE")
    if dry_run:
        p.add_argument("--dry-run", action="store_true",
                       help="print what this run would change (files with their modes and diffs, the option, "
                            "services, hosts) and change nothing: no confirmation, no log unless --log")
    return p


def _log_file(root: Root, action: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    return root.path(paths.LOG_DIR) / f"ovirt-engine-{action}-{stamp}-{suffix}.log"


def prepare(args: argparse.Namespace, action: str, groups: list[str]) -> Context:
    """Everything that can be checked before the run starts: no file is written before this returns."""
    root = Root(args.root)
    statements = [pair for text in args.otopi_environment for pair in parse_statements(text)]
    for path in args.config_append:
        if not path.is_file():
            raise UsageError(f"--config-append: {path} does not exist")
    config_files = expand(root.path(paths.SETUP_CONFIG)) + [p for a in args.config_append for p in expand(a)]
    config: ConfigValues = read_config_files(config_files)
    dry_run = getattr(args, "dry_run", False)
    context = Context(root=root, action=action, config=config, accept_defaults=args.accept_defaults,
                      dry_run=dry_run)
    context.load_plugins(resource_dir("plugins"), groups)
    given = dict(statements)
    for section in config.sections.values():
        given.update(section)
    problems = [problem for name, value in given.items() if name in context.keys
                for problem in [context.keys[name].check(value)] if problem]
    if problems:
        raise UsageError("; ".join(problems))
    for key, value in statements:
        context.env.supply(key, value)
    if args.generate_answer:
        context.env.supply(ANSWER_FILE_KEY, str(args.generate_answer))
    context.log_file = args.log or (None if dry_run else _log_file(root, action))
    return context


def run(argv: list[str] | None, action: str, groups: list[str], p: argparse.ArgumentParser) -> int:
    args = p.parse_args(argv)
    context = prepare(args, action, groups)
    handler = setup_console(sys.stdout, context.secrets)
    try:
        return context.run()
    finally:
        close_handlers([handler])


@entry("engine-setup")
def setup_main(argv: list[str] | None = None) -> int:
    return run(argv, "setup", SETUP_GROUPS, parser("engine-setup"))


@entry("engine-cleanup")
def cleanup_main(argv: list[str] | None = None) -> int:
    p = parser("engine-cleanup", CLEANUP_DESCRIPTION, CLEANUP_EPILOG, "cleanup", CLEANUP_GROUPS, dry_run=False)
    return run(argv, "cleanup", CLEANUP_GROUPS, p)
