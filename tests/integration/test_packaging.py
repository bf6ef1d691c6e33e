"""`pip install .` (not editable) gives a working engine-setup that finds plugins and templates."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENGINE_ENV

pytestmark = pytest.mark.integration
SOURCE = Path(__file__).resolve().parents[2]


def test_wheel_install_runs_outside_the_source_tree(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(wheels), str(SOURCE)], check=True, capture_output=True, cwd=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(wheels.glob("*.whl"))
    subprocess.run([venv / "bin/pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    root = tmp_path / "root"
    result = subprocess.run(
        [venv / "bin/engine-setup", "--root", str(root), "--accept-defaults", f"--otopi-environment={ENGINE_ENV}"],
        capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    shipped = subprocess.run([venv / "bin/python", "-c", "import ovsetup.resources as p; "
                              "print(p.resource_dir('plugins'), p.resource_dir('templates'))"],
                             capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(venv) in shipped and str(SOURCE) not in shipped
    assert (root / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf").is_file()
