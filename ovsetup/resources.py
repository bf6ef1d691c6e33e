"""Where the shipped resource trees are found (shared with the proxy side: see `ovcommon.resources`)."""
from ovcommon.resources import resource_dir

__all__ = ["resource_dir"]
