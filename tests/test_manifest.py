"""Uninstall manifests: written and read back in oVirt's format; the newest manifest wins; changes seen."""
import hashlib

from ovcommon.paths import Root
from ovsetup import manifest
from ovsetup.core.transaction import FileRemove, Transaction


def write(root, name, entries, dirs=None):
    folder = root / "etc/ovirt-engine/uninstall.d"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(manifest.render(entries, dirs or {}))


def test_round_trip_newest_wins_and_changed_files(tmp_path):
    conf = tmp_path / "etc/x.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("new\n")
    old_sha = hashlib.sha256(b"old\n").hexdigest()
    new_sha = hashlib.sha256(b"new\n").hexdigest()
    write(tmp_path, "20260101000000-uninstall.conf", [manifest.Recorded("/etc/x.conf", old_sha, "core")],
          {"core": ["/etc/d"]})
    write(tmp_path, "20260102000000-uninstall.conf", [manifest.Recorded("/etc/x.conf", new_sha, "core")])
    text = (tmp_path / "etc/ovirt-engine/uninstall.d/20260101000000-uninstall.conf").read_text()
    assert "[file_group_core]\ndescription = Core files\noptional = False\nfile.000.name = /etc/x.conf\n" in text
    found = manifest.read(Root(tmp_path))
    assert found.files == {"/etc/x.conf": manifest.Recorded("/etc/x.conf", new_sha, "core")}
    assert found.dirs == {"/etc/d"} and len(found.sources) == 2
    assert not manifest.changed(Root(tmp_path), found.files["/etc/x.conf"])
    conf.write_text("edited\n")
    assert manifest.changed(Root(tmp_path), found.files["/etc/x.conf"])
    conf.unlink()
    assert not manifest.changed(Root(tmp_path), found.files["/etc/x.conf"])


def test_file_remove_is_undone_with_its_bytes_mode_and_folder(tmp_path):
    target = tmp_path / "d" / "f"
    target.parent.mkdir()
    target.write_text("x")
    target.chmod(0o600)
    tx = Transaction()
    tx.append(FileRemove(target))
    tx.prepare()
    tx.commit()
    assert not target.exists()
    target.parent.rmdir()
    tx.abort()
    assert target.read_text() == "x" and target.stat().st_mode & 0o777 == 0o600
