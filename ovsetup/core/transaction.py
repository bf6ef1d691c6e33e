"""Two-phase changes: prepare everything that can fail, then commit; undo in reverse on any failure.

`FileWrite` registers before it writes: it remembers the original bytes and mode (or that there was
no file), writes a temporary file next to the target with fsync, and renames it in commit. Until the
run is over, even a committed write can be undone, so a failure anywhere leaves files as they were.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ovcommon.files import atomic_write, make_parents, sha256_file  # noqa: F401 (callers name them here)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """What one element would change, for a dry run: a file (`create`, `change`, `remove`, with its mode
    afterwards and its bytes before and after when known), an engine option (`option`, in `summary`), or
    another element (`apply`, named by `target`)."""

    target: str
    action: str
    mode: int | None = None
    old: bytes | None = None
    new: bytes | None = None
    summary: str | None = None  # said instead of the content (an option's old and new value)


class Element(Protocol):
    def plan(self) -> list[Change]: ...  # reads only: what prepare and commit would change
    def prepare(self) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class Transaction:
    """Elements appended after `prepare()` are prepared at once (plugins append in MISC); those appended
    after `commit()` (the uninstall manifest, in CLEANUP) are committed at once, and undone like the others
    if the run fails later.

    A `record_only` transaction (a dry run) never prepares or commits: it asks each element what it would
    change and keeps the answers in `changes`."""

    def __init__(self, record_only: bool = False) -> None:
        self.elements: list[Element] = []
        self.record_only = record_only
        self.changes: list[Change] = []
        self.prepared = False
        self.committed = False

    def append(self, element: Element) -> None:
        self.elements.append(element)
        if self.prepared:
            self._prepare(element)
        if self.committed:
            element.commit()

    def prepare(self) -> None:
        self.prepared = True
        for element in list(self.elements):
            self._prepare(element)

    def _prepare(self, element: Element) -> None:
        if self.record_only:
            plan = getattr(element, "plan", None)  # an element that cannot describe itself is named
            self.changes.extend(plan() if plan else [Change(str(element), "apply")])
        else:
            element.prepare()

    def commit(self) -> None:
        if self.record_only:
            raise RuntimeError("a record-only transaction cannot commit")
        for element in self.elements:
            element.commit()
        self.committed = True

    def abort(self) -> bool:
        """Undo every element, newest first; also after commit, until the run ends.

        Returns whether everything was undone."""
        restored = True
        for element in reversed(self.elements if not self.record_only else []):
            try:
                element.abort()
            except Exception:  # keep undoing the others; the log says what stayed behind
                log.exception("could not undo %s", element)
                restored = False
        self.elements.clear()
        return restored


def remove_dirs(created: list[Path]) -> None:
    """Undo `make_parents`: remove those directories that are empty again, innermost first."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            log.debug("left directory %s (not empty)", directory)


@dataclass
class Original:
    content: bytes | None  # None: there was no file
    mode: int = 0


class FileWrite:
    """Write one file atomically with an explicit mode; no write at all when nothing changes."""

    def __init__(self, path: Path, content: bytes | str, *, mode: int = 0o644, dir_mode: int = 0o755,
                 group: str = "core", target: str | None = None, owner: str | None = None) -> None:
        self.path = path
        self.content = content.encode() if isinstance(content, str) else content
        self.mode = mode
        self.dir_mode = dir_mode
        self.owner = owner
        self.group = group
        self.target = target or str(path)  # the target-system path, for manifests
        self.original: Original | None = None
        self.created_dirs: list[Path] = []
        self.changed = False
        self.committed = False

    def __str__(self) -> str:
        return f"file {self.target}"

    def _inspect(self) -> Original:
        """What is there now, and whether this write changes it; reads only."""
        if self.path.is_file():
            current = self.path.read_bytes()
            mode = self.path.stat().st_mode & 0o7777
            self.original = Original(current, mode)
            self.changed = current != self.content or mode != self.mode
        else:
            self.original = Original(None)
            self.changed = True
        return self.original

    def plan(self) -> list[Change]:
        original = self._inspect()
        if not self.changed:
            return []
        return [Change(self.target, "create" if original.content is None else "change", self.mode,
                       original.content, self.content)]

    def prepare(self) -> None:
        if self._inspect().content is None:
            self.created_dirs = make_parents(self.path, self.dir_mode)
        if self.changed and not os.access(self.path.parent, os.W_OK):
            raise PermissionError(f"cannot write {self.path.parent}")

    def commit(self) -> None:
        if self.changed:
            atomic_write(self.path, self.content, self.mode, self.owner)
            log.debug("wrote %s (%o)", self.target, self.mode)
        self.committed = True

    def abort(self) -> None:
        if self.committed and self.changed and self.original is not None:
            if self.original.content is None:
                self.path.unlink(missing_ok=True)
            else:
                atomic_write(self.path, self.original.content, self.original.mode)
            log.debug("restored %s", self.target)
        remove_dirs(self.created_dirs)
        self.created_dirs = []
        self.committed = False


class FileRemove:
    """Remove one file in commit; abort puts it back with its bytes and mode (and its folders)."""

    def __init__(self, path: Path, target: str | None = None) -> None:
        self.path = path
        self.target = target or str(path)
        self.original: Original | None = None
        self.committed = False

    def __str__(self) -> str:
        return f"removal of {self.target}"

    def plan(self) -> list[Change]:
        if not self.path.is_file():
            return []
        return [Change(self.target, "remove", self.path.stat().st_mode & 0o7777, self.path.read_bytes(), None)]

    def prepare(self) -> None:
        if self.path.is_file():
            self.original = Original(self.path.read_bytes(), self.path.stat().st_mode & 0o7777)
            if not os.access(self.path.parent, os.W_OK):
                raise PermissionError(f"cannot remove {self.path}")

    def commit(self) -> None:
        if self.original is not None:
            self.path.unlink(missing_ok=True)
            log.debug("removed %s", self.target)
            self.committed = True

    def abort(self) -> None:
        if self.committed and self.original is not None and self.original.content is not None:
            make_parents(self.path)
            atomic_write(self.path, self.original.content, self.original.mode)
            log.debug("restored %s", self.target)
        self.committed = False
