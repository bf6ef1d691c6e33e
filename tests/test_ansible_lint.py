"""`ansible-lint` (production profile, offline: no Galaxy) passes on the playbook and the role."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ovcommon.resources import resource_dir

LINT = Path(sys.executable).parent / "ansible-lint"


@pytest.mark.skipif(not LINT.exists(), reason="ansible-lint is not installed (extra deploy-lint)")
def test_ansible_lint_passes():
    env = {**os.environ, "PATH": f"{LINT.parent}:{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    result = subprocess.run([str(LINT), "--offline", "--profile", "production"], cwd=resource_dir("ansible"),
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
