"""The targets' wheelhouse: the Python probe, the per-version wheel selection, the product's rebuilt wheel."""
from __future__ import annotations

import subprocess
import sys
import tarfile

import pytest

from ovcommon.paths import Root
from ovsetup.deploy import wheelhouse as wh
from ovsetup.deploy.hosts import DeployError

DEBIAN_13 = wh.TargetPython("3.13", "x86_64", ("glibc", "2.41"))


def test_the_probe_runs_on_a_bare_python_and_reads_back():
    out = subprocess.run([sys.executable, "-I", "-S", "-c", wh.PROBE], capture_output=True, text=True, check=True)
    assert wh.TargetPython.parse("Warning: banner\n" + out.stdout) == wh.TargetPython.engine()
    with pytest.raises(DeployError, match="not its version"):
        wh.TargetPython.parse("python3: command not found")


def test_platform_tags_reach_down_from_the_targets_glibc():
    tags = DEBIAN_13.platforms()
    assert tags[0] == "manylinux_2_41_x86_64" and tags[-1] == "linux_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_42_x86_64" not in tags
    assert wh.TargetPython("3.12", "aarch64", ("", "")).platforms() == ["linux_aarch64"]


def test_another_python_gets_wheels_selected_for_it(tmp_path):
    same = wh.download_command(wh.TargetPython.engine(), ["uvloop>=0.19"], tmp_path, None)
    assert "--python-version" not in same and "--no-index" not in same and "--only-binary=:all:" in same
    other = wh.download_command(DEBIAN_13, ["uvloop>=0.19"], tmp_path, tmp_path / "wheels")
    assert other[other.index("--python-version") + 1] == "3.13"
    assert other[other.index("--find-links") + 1] == str(tmp_path / "wheels") and "--no-index" in other
    assert "manylinux_2_41_x86_64" in other and other[-2:] == ["uvloop>=0.19", "pip"]


def test_the_proxy_extra_is_exactly_the_proxy_sides_requirements():
    names = sorted(r.split(">")[0].split("=")[0] for r in wh.proxy_requirements())
    assert names == ["cryptography", "jinja2", "uvloop", "websockets"]


def engine_wheel_dir(tmp_path):
    """A wheel directory with the proxy's requirements for the engine's Python only, as an admin makes it."""
    directory = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--dest", str(directory),
                    *wh.proxy_requirements(), "pip"], check=True, capture_output=True)
    return directory


def test_a_wheel_directory_serves_the_engines_python_and_names_the_missing_one(tmp_path):
    directory = engine_wheel_dir(tmp_path)
    root = Root(tmp_path / "root")
    house = wh.wheelhouse_for(root, None, directory)
    with tarfile.open(house.archive) as tar:
        names = tar.getnames()
        listed = tar.extractfile(wh.REQUIREMENTS).read().decode().split()  # type: ignore[union-attr]
    assert any(n.startswith("ovirt_engine_wsp-") for n in names) and any(n.startswith("uvloop-") for n in names)
    assert not any(n.startswith(("ansible", "psycopg")) for n in names)
    assert listed == wh.proxy_requirements()
    assert wh.wheelhouse_for(root, None, directory) == house  # cached: keyed by what it holds
    before = sorted(p.name for p in root.path(wh.WHEELHOUSE_DIR).iterdir())
    with pytest.raises(DeployError, match=r"no wheels for Python 3\.13 \(x86_64\) in the wheel directory"):
        wh.wheelhouse_for(root, DEBIAN_13, directory)
    assert sorted(p.name for p in root.path(wh.WHEELHOUSE_DIR).iterdir()) == before
