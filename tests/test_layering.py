"""Dependencies run one way: the proxy side (`wsproxy`) and the shared leaf (`ovcommon`) import nothing of the
setup side, so a proxy host runs with the product's wheel and only the proxy side's requirements."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import ovcommon
import wsproxy

PROBE = """
import importlib, json, sys
for name in {names}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('ovsetup', 'wsproxy', 'ovcommon',
                                                                        'ansible', 'ansible_runner', 'psycopg'))))
"""


def _imported(package) -> list[str]:
    names = [package.__name__] + [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                                      if m.name != "__main__"]
    out = subprocess.run([sys.executable, "-c", PROBE.format(names=names)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_proxy_side_never_imports_the_setup_side():
    loaded = _imported(wsproxy)
    assert "wsproxy.hosttool" in loaded and "wsproxy.daemon" in loaded
    assert [m for m in loaded if m.split(".")[0] in ("ovsetup", "ansible", "ansible_runner", "psycopg")] == []


def test_the_shared_leaf_imports_nothing_of_either_side():
    loaded = _imported(ovcommon)
    assert "ovcommon.certs" in loaded
    assert [m for m in loaded if not m.startswith("ovcommon")] == []
