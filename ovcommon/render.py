"""Every file setup writes, locally or on a proxy host, is rendered from a Jinja2 template in `templates/`."""
from __future__ import annotations

import re
from functools import cache
from typing import Any

import jinja2

from .resources import resource_dir

_SHELL_SPECIAL = re.compile(r'([\\"$`])')


def shell_value(value: object) -> str:
    """A value for oVirt's shell-like `KEY=value` files: double-quoted with \\ " $ ` escaped."""
    return '"' + _SHELL_SPECIAL.sub(r"\\\1", str(value)) + '"'


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("templates")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["shell"] = shell_value
    return env


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)
