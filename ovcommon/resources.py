"""Where the shipped resource trees (plugins, templates, the Ansible playbook) are found."""
from __future__ import annotations

from pathlib import Path


def resource_dir(name: str) -> Path:
    """Locate a shipped resource tree (`plugins`, `templates`, `ansible`).

    An installed package carries them in `ovcommon/share/`; a source checkout has them at the top.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "share" / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"resource tree {name!r} not found next to {here}")
