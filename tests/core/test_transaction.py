import os

import pytest

from ovsetup.core import transaction
from ovsetup.core.transaction import FileWrite, Transaction


def test_write_is_atomic_with_mode_and_creates_dirs(tmp_path):
    target = tmp_path / "a" / "b" / "f.conf"
    tx = Transaction()
    tx.prepare()
    tx.append(FileWrite(target, "x=1\n", mode=0o600))
    tx.commit()
    assert target.read_text() == "x=1\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert not list(target.parent.glob(".*.tmp"))


def test_unchanged_content_is_not_written(tmp_path):
    target = tmp_path / "f"
    target.write_text("same")
    target.chmod(0o644)
    os.utime(target, (1, 1))
    write = FileWrite(target, "same")
    tx = Transaction()
    tx.append(write)
    tx.prepare()
    tx.commit()
    assert not write.changed
    assert target.stat().st_mtime == 1


def test_abort_after_commit_restores_and_removes(tmp_path):
    existing = tmp_path / "old"
    existing.write_text("before")
    new = tmp_path / "new" / "dir" / "file"
    tx = Transaction()
    tx.prepare()
    tx.append(FileWrite(existing, "after"))
    tx.append(FileWrite(new, "x"))
    tx.commit()
    assert tx.abort()
    assert existing.read_text() == "before"
    assert not (tmp_path / "new").exists()


def test_failure_at_rename_leaves_everything_as_it_was(tmp_path, monkeypatch):
    first, second = tmp_path / "one", tmp_path / "two"
    first.write_text("1")
    tx = Transaction()
    tx.prepare()
    tx.append(FileWrite(first, "changed"))
    tx.append(FileWrite(second, "new"))
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if str(dst) == str(second):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(transaction.os, "replace", failing_replace)
    with pytest.raises(OSError):
        tx.commit()
    monkeypatch.setattr(transaction.os, "replace", real_replace)
    tx.abort()
    assert first.read_text() == "1"
    assert not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]


def test_sigterm_during_a_run_undoes_its_files(tmp_path):
    import signal

    from ovcommon.paths import Root
    from ovsetup.core.context import Context
    from ovsetup.core.events import event
    from ovsetup.core.plugin import Plugin
    from ovsetup.core.stages import Stage

    existing = tmp_path / "kept.conf"
    existing.write_text("original\n")

    class Writer(Plugin):
        @event(Stage.MISC)
        def write(self):
            self.transaction.append(FileWrite(existing, "changed\n"))
            self.transaction.append(FileWrite(tmp_path / "new" / "file", "x"))

    class Killer(Plugin):
        @event(Stage.CLOSEUP)
        def terminate(self):
            os.kill(os.getpid(), signal.SIGTERM)

    ctx = Context(root=Root(tmp_path), action="test")
    ctx.add_plugin(Writer)
    ctx.add_plugin(Killer)
    assert ctx.run() == 1
    assert "SIGTERM" in str(ctx.error) and ctx.restored
    assert existing.read_text() == "original\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.conf"]
