"""Packaging for engine-setup's WebSocket proxy feature.

`pip install .` must give a working install: the top-level `plugins/`, `templates/` and `ansible/`
trees are copied into the `ovsetup` package as `ovsetup/share/...` at build time, and
`ovsetup.resources.resource_dir()` finds them there (or in the source tree for a checkout).
"""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

RESOURCE_TREES = ("plugins", "templates", "ansible")


class BuildWithResources(build_py):
    """Copy the resource trees next to the built package."""

    def run(self) -> None:
        super().run()
        share = Path(self.build_lib) / "ovsetup" / "share"
        for tree in RESOURCE_TREES:
            source = Path(__file__).parent / tree
            if source.is_dir():
                target = share / tree
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(
                    source, target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
                )


EXTRAS = {
    "deploy": ["ansible-core>=2.16", "ansible-runner>=2.4"],
    "deploy-lint": ["ansible-lint>=24"],
    "pg": ["psycopg[binary]>=3.1"],
    "test": ["pytest>=8", "ruff", "hypothesis>=6"],
    "proxy-test": ["playwright>=1.40", "websockify>=0.11", "numpy"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})  # what CI installs


setup(
    name="ovirt-engine-wsp",
    version="0.1.0",
    description="engine-setup for the noVNC console's WebSocket proxy",
    python_requires=">=3.11",
    packages=find_packages(include=["ovcommon", "ovcommon.*", "ovsetup", "ovsetup.*", "wsproxy", "wsproxy.*"]),
    include_package_data=True,
    package_data={"wsproxy": ["*.conf", "static/**/*", "templates/*"]},
    install_requires=[
        "cryptography>=41",
        "jinja2>=3.1",
        "websockets>=13",
        "uvloop>=0.19",
    ],
    extras_require=EXTRAS,
    cmdclass={"build_py": BuildWithResources},
    entry_points={
        "console_scripts": [
            "engine-setup=ovsetup.cli:setup_main",
            "engine-cleanup=ovsetup.cli:cleanup_main",
            "engine-config=ovsetup.engine_config:main",
            "ovirt-websocket-proxy=wsproxy.daemon:main",
            "engine-console-ticket=ovsetup.console_ticket:main",
            "engine-console-launcher=ovsetup.console_launcher:main",
            "ovirt-websocket-proxy-host=ovsetup.hosttool:main",
        ],
    },
)
