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

    class Opaque:  # an element that cannot describe itself is still named, and never prepared
        def __str__(self) -> str:
            return "user proxy"

        def prepare(self) -> None:
            raise AssertionError("prepared")

    transaction.append(Opaque())
    assert transaction.changes.pop() == Change("user proxy", "apply")
    assert "would apply user proxy\n" in dryrun.render([Change("user proxy", "apply")], [])
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


def test_a_dry_run_lists_planned_events_and_runs_nothing_after_misc(tmp_path):
    from ovcommon.paths import Root
    from ovsetup.core.context import Context
    from ovsetup.core.events import event
    from ovsetup.core.plugin import Plugin
    from ovsetup.core.stages import Stage

    ran: list[str] = []

    class Story(Plugin):
        @event(Stage.EARLY_MISC, planned=lambda self: ["create a user"])
        def user(self) -> None:
            ran.append("useradd")

        @event(Stage.MISC)
        def write(self) -> None:
            ran.append("misc")
            self.transaction.append(FileWrite(tmp_path / "etc/x.conf", "x\n", target="/etc/x.conf"))

        @event(Stage.CLOSEUP, planned=lambda self: ["restart a service"])
        def restart(self) -> None:
            ran.append("systemctl")

        @event(Stage.CLOSEUP, condition=lambda self: False, planned=lambda self: ["never"])
        def not_wanted(self) -> None:
            ran.append("not wanted")

        @event(Stage.CLEANUP)
        def cleanup(self) -> None:
            ran.append("cleanup")

        @event(Stage.TERMINATE)
        def last(self) -> None:
            ran.append("terminate")

    context = Context(root=Root(tmp_path), action="setup", dry_run=True)
    context.add_plugin(Story)
    assert context.run() == 0
    assert ran == ["misc", "terminate"]
    assert context.planned == ["create a user", "restart a service"]
    assert [(c.target, c.action) for c in context.transaction.changes] == [("/etc/x.conf", "create")]
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_writes_no_file_anywhere_and_starts_no_process(tmp_path, monkeypatch, capsys):
    """Every way to write a file or act on the system fails the test: a plugin that forgot `planned`
    (or a write outside --root, such as --generate-answer's file) would be caught here."""
    import os
    import subprocess
    import tempfile

    from ovsetup import cli

    def refused(*args, **kwargs):
        raise AssertionError(f"a dry run acted: {args!r}")

    for module, name in ((os, "replace"), (os, "rename"), (os, "mkdir"), (os, "unlink"), (os, "kill"),
                         (tempfile, "mkstemp"), (subprocess, "Popen")):
        monkeypatch.setattr(module, name, refused)
    answers = tmp_path / "answers.conf"
    argv = ["--root", str(tmp_path / "root"), "--dry-run", f"--generate-answer={answers}",
            "--otopi-environment=OVESETUP_CONFIG/websocketProxyConfig=bool:True "
            "OVESETUP_CONFIG/fqdn=str:engine.example.test"]
    assert cli.run(argv, "setup", cli.SETUP_GROUPS, cli.parser("engine-setup")) == 0
    out = capsys.readouterr().out
    assert f"create 0600 {answers}\n" in out and "a dry run acted" not in out
    assert list(tmp_path.iterdir()) == []
