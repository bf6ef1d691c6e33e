"""The record-only transaction and the dry run's report, without the framework."""
from __future__ import annotations

import pytest

from ovsetup import dryrun, pki
from ovsetup.core.transaction import Change, FileRemove, FileWrite, Transaction
from ovsetup.options import SQLiteStore


def test_record_only_transaction_reads_and_never_writes(tmp_path):
    kept, changed, removed = tmp_path / "kept", tmp_path / "changed", tmp_path / "removed"
    kept.write_text("same\n")
    kept.chmod(0o644)
    changed.write_text("old\n")
    changed.chmod(0o600)
    removed.write_text("gone\n")
    before = {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    transaction = Transaction(record_only=True)
    transaction.append(FileWrite(tmp_path / "new/dir/file", "new\n", mode=0o640, target="/new/dir/file"))
    transaction.append(FileWrite(kept, "same\n", target="/kept"))
    transaction.prepare()
    transaction.append(FileWrite(changed, "new\n", mode=0o644, target="/changed"))  # as plugins do in MISC
    transaction.append(FileRemove(removed, target="/removed"))
    transaction.append(SQLiteStore(tmp_path / "db/options.sqlite", "/db/options.sqlite").update("WebSocketProxy",
                                                                                               "a.example:6100"))
    assert [(c.target, c.action, c.mode) for c in transaction.changes] == [
        ("/new/dir/file", "create", 0o640), ("/changed", "change", 0o644), ("/removed", "remove", 0o644),
        ("/db/options.sqlite", "create", 0o600), ("WebSocketProxy", "option", None)]
    assert transaction.changes[1].old == b"old\n" and transaction.changes[1].new == b"new\n"
    assert transaction.changes[-1].summary.startswith("Off -> a.example:6100 (SQLite ")
    with pytest.raises(RuntimeError):
        transaction.commit()
    assert transaction.abort()
    assert {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before


def test_report_diffs_text_summarizes_the_rest_and_masks_secrets():
    authority = pki.create_authority("US", "Test", "ca.example")
    changes = [
        Change("/etc/a.conf", "change", 0o600, b"PORT=1\nPASSWORD=hunter2\n", b"PORT=2\nPASSWORD=hunter2\n"),
        Change("/etc/ca.pem", "create", 0o644, None, pki.cert_pem(authority.cert)),
        Change("/etc/ca.key", "create", 0o600, None, pki.key_pem(authority.key)),
        Change("/etc/engine.p12", "create", 0o600, None, b"\x30\x82binary"),
        Change("/etc/blob", "create", 0o644, None, b"\xff\xfe"),
        Change("WebSocketProxy", "option", summary="Off -> a:1 (SQLite x)"),
    ]
    text = dryrun.render(changes, ["restart the service s"])
    lines = text.splitlines()
    assert lines[0] == dryrun.HEADER and lines[-1] == dryrun.FOOTER
    assert "change 0600 /etc/a.conf\n--- /etc/a.conf\n+++ /etc/a.conf\n@@ -1,2 +1,2 @@\n-PORT=1\n+PORT=2\n" in text
    assert "create 0644 /etc/ca.pem: certificate CN=" in text
    assert "create 0600 /etc/ca.key: private key (RSA 2048 bits)" in text and "BEGIN" not in text
    assert "create 0600 /etc/engine.p12: PKCS#12 key store" in text
    assert "create 0644 /etc/blob: binary (2 bytes)" in text
    assert "option WebSocketProxy: Off -> a:1 (SQLite x)\nwould restart the service s\n" in text
    masked = dryrun.scrub(text, lambda: ["hunter2"])
    assert "hunter2" not in masked and " PASSWORD=**FILTERED**" in masked
