"""Uninstall manifests, `/etc/ovirt-engine/uninstall.d/<time>-uninstall.conf`, in oVirt's format.

Setup writes one per run that changed files: sections `file_group_<group>` with `description`,
`optional`, `file.NNN.name`, `file.NNN.sha256` and `dir.NNN.name` (folders it created). engine-cleanup
reads them all; for a file in several manifests the newest one counts.
"""
from __future__ import annotations

import configparser
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ovcommon import paths
from ovcommon.paths import Root

from .core.transaction import sha256_file

GROUP_DESCRIPTIONS = {"core": "Core files", "ca_pki": "Engine PKI", "ca_pki_wsp": "WSP PKI keys"}


@dataclass(frozen=True)
class Recorded:
    target: str  # the target-system path
    sha256: str
    group: str


@dataclass
class Manifests:
    sources: list[Path] = field(default_factory=list)
    files: dict[str, Recorded] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)


def render(files: Iterable[Recorded], dirs: dict[str, list[str]]) -> str:
    """The manifest text for these files and, per group, the folders created for them."""
    parser = _parser()
    files = list(files)
    for group in sorted({f.group for f in files} | set(dirs)):
        section = f"file_group_{group}"
        parser.add_section(section)
        parser.set(section, "description", GROUP_DESCRIPTIONS.get(group, group))
        parser.set(section, "optional", "False")
        for index, entry in enumerate(f for f in files if f.group == group):
            parser.set(section, f"file.{index:03d}.name", entry.target)
            parser.set(section, f"file.{index:03d}.sha256", entry.sha256)
        for index, folder in enumerate(sorted(dirs.get(group, []))):
            parser.set(section, f"dir.{index:03d}.name", folder)
    text = io.StringIO()
    parser.write(text)
    return text.getvalue()


def read(root: Root) -> Manifests:
    """Every manifest below `root`, oldest first (the names start with the time)."""
    result = Manifests()
    folder = root.path(paths.UNINSTALL_DIR)
    for source in sorted(folder.glob("*.conf")) if folder.is_dir() else []:
        parser = _parser()
        try:
            parser.read(source, encoding="utf-8")
        except configparser.Error as exc:
            raise ValueError(f"{source}: not an uninstall manifest: {str(exc).splitlines()[0]}") from None
        for section in parser.sections():
            if not section.startswith("file_group_"):
                continue
            group = section.removeprefix("file_group_")
            items = dict(parser.items(section))
            for key, value in items.items():
                if key.startswith("file.") and key.endswith(".name"):
                    sha = items.get(key.removesuffix(".name") + ".sha256", "")
                    result.files[value] = Recorded(value, sha, group)
                elif key.startswith("dir.") and key.endswith(".name"):
                    result.dirs.add(value)
        result.sources.append(source)
    return result


def changed(root: Root, entry: Recorded) -> bool:
    """The file differs from what setup wrote (a missing file has nothing to keep)."""
    path = root.path(entry.target)
    return path.is_file() and sha256_file(path) != entry.sha256


def _parser() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    return parser
