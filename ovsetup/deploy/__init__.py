"""Deploy the proxy to other machines with Ansible (through ansible-runner), and remove it again.

`hosts`: the host list and inventories; `wheelhouse`: what the targets install; `runner`: the playbook through
ansible-runner; `record`: what was deployed where. `deploy()` and `remove()` take a typed `Deployment` and
return one `DeployResult` naming each host's outcome.
"""
from .hosts import GROUP, DeployError, Ssh, Target, inventory, inventory_hosts, parse_hosts
from .record import DEFAULT_PREFIX, MODES, Deployment, load_record, save_record
from .runner import DeployResult, HostResult, artifacts_dir, deploy, prepare, remove
from .wheelhouse import PACKAGE, WHEELHOUSE_DIR, WHEELHOUSE_KEY, TargetPython, Wheelhouse, wheelhouse_for

__all__ = ["DEFAULT_PREFIX", "GROUP", "MODES", "PACKAGE", "WHEELHOUSE_DIR", "WHEELHOUSE_KEY", "DeployError",
           "DeployResult", "Deployment", "HostResult", "Ssh", "Target", "TargetPython", "Wheelhouse", "artifacts_dir",
           "deploy", "inventory", "inventory_hosts", "load_record", "parse_hosts", "prepare", "remove",
           "save_record", "wheelhouse_for"]
