"""Fixtures for the proxy's unit tests: a throwaway engine PKI, made once per session."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.proxy.pkitools import EnginePKI, Pair, issue, make_ca, write_engine_pki


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: runs real components (Xvnc, Chromium, daemons)")


@pytest.fixture(scope="session")
def _pki_template(tmp_path_factory: pytest.TempPathFactory) -> EnginePKI:
    return write_engine_pki(tmp_path_factory.mktemp("pki-template"))


@pytest.fixture
def pki(_pki_template: EnginePKI, tmp_path: Path) -> EnginePKI:
    """A fresh copy of the engine PKI tree below a temporary --root."""
    root = tmp_path / "root"
    shutil.copytree(_pki_template.root, root)
    return EnginePKI(root, _pki_template.ca, _pki_template.engine, _pki_template.proxy)


@pytest.fixture(scope="session")
def foreign() -> Pair:
    """A key and certificate that the engine never issued."""
    return issue(make_ca("other-ca"), "impostor")
