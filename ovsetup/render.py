"""Every file setup writes is rendered from a Jinja2 template in `templates/` (see `ovcommon.render`)."""
from ovcommon.render import render, shell_value

__all__ = ["render", "shell_value"]
