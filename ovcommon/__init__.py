"""What the setup side (`ovsetup`) and the proxy (`wsproxy`) share: the path table and `--root`
re-rooting, oVirt's shell-like `KEY=value` files, and the console ticket codec.

A leaf: it imports nothing of ours, so either side can be installed and used without the other.
"""
from importlib import metadata as _metadata

try:
    VERSION = _metadata.version("ovirt-engine-wsp")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "unknown"
