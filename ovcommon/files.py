"""Writing a file so that a crash leaves the old content or the new, never half of either."""
from __future__ import annotations

import hashlib
import os
import pwd
import tempfile
from pathlib import Path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, content: bytes, mode: int, owner: str | None = None) -> None:
    """Write through a temporary file in the same directory, fsync, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            if owner is not None:
                user = pwd.getpwnam(owner)
                os.fchown(stream.fileno(), user.pw_uid, user.pw_gid)
            os.fchmod(stream.fileno(), mode)
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def make_parents(path: Path, mode: int = 0o755) -> list[Path]:
    """Create the missing parent directories of `path`; return them, outermost first."""
    missing = [parent for parent in path.parents if not parent.exists()]
    created = []
    for directory in reversed(missing):
        directory.mkdir(mode=mode)
        os.chmod(directory, mode)
        created.append(directory)
    return created


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
