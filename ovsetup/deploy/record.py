"""The record of what was deployed where (`websocket-proxy-deploy.json`, 0600): the typed `Deployment` that
re-runs, certificate renewal and cleanup read to reach the hosts again."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ovcommon import paths
from ovcommon.paths import Root

from ..core.transaction import atomic_write, make_parents
from .hosts import DeployError, Ssh, Target

MODES = ("none", "remote", "hosts")
DEFAULT_PREFIX = "/opt/ovirt-websocket-proxy"


@dataclass
class Deployment:
    """Where and how to deploy: our own targets or an inventory file, SSH settings, the targets' layout."""

    mode: str  # "remote" or "hosts"
    targets: list[Target]
    inventory: str | None = None  # an inventory file instead of targets
    ssh: Ssh = field(default_factory=Ssh)
    prefix: str = DEFAULT_PREFIX
    port: int = paths.DEFAULT_PROXY_PORT
    forks: int = 10
    wheel_dir: str | None = None  # OVESETUP_CONFIG/websocketProxyWheelhouse; None: the package index
    status: dict[str, str] = field(default_factory=dict)  # host: "deployed" or "failed: <task>: <reason>"

    @property
    def hosts_mode(self) -> bool:
        return self.mode == "hosts"


def save_record(root: Root, deployment: Deployment) -> bool:
    """Write the record (0600) unless it already says the same; True if written. It is kept even when a run
    fails, so cleanup can reach every host."""
    target = root.path(paths.DEPLOY_RECORD)
    data = (json.dumps(asdict(deployment), indent=1) + "\n").encode()
    if target.is_file() and target.read_bytes() == data and target.stat().st_mode & 0o777 == 0o600:
        return False
    make_parents(target, 0o700)
    atomic_write(target, data, 0o600)
    return True


def load_record(root: Root) -> Deployment | None:
    """The last recorded deployment below root, None if there is none, a DeployError if it is damaged."""
    path = root.path(paths.DEPLOY_RECORD)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return Deployment(**{**data, "targets": [Target(**t) for t in data["targets"]], "ssh": Ssh(**data["ssh"])})
    except (ValueError, TypeError, KeyError) as exc:
        raise DeployError(f"{paths.DEPLOY_RECORD} is damaged ({type(exc).__name__}: {exc}): restore it from a "
                          f"backup, or remove it and deploy again") from None
