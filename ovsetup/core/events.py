"""The `event` decorator: a plugin method declared by stage, name, before/after, priority, condition."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginError
from .stages import Priority, Stage

Condition = Callable[[Any], bool]
Planned = Callable[[Any], list[Any]]  # what an event would do outside the transaction: lines, or Changes


@dataclass(frozen=True)
class EventSpec:
    stage: Stage
    name: str | None = None
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    priority: int = Priority.DEFAULT
    condition: Condition | None = field(default=None, compare=False)
    planned: Planned | None = field(default=None, compare=False)


def event(
    stage: Stage,
    *,
    name: str | None = None,
    before: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
    priority: int = Priority.DEFAULT,
    condition: Condition | None = None,
    planned: Planned | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a plugin method as an event. `condition(self)` is evaluated just before the event runs.

    An event that acts outside the transaction (a user, a service, the firewall, a deployment, a file it
    writes itself) gives `planned(self)`: what it would do, as text lines or `Change`s. A dry run lists
    that instead of running the event."""
    for label, names in (("before", before), ("after", after)):
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise PluginError(f"event {name or '?'}: {label} must be a tuple of names, got {names!r}")

    def decorate(method: Callable[..., None]) -> Callable[..., None]:
        method.event_spec = EventSpec(stage, name, tuple(before), tuple(after), priority, condition,
                                      planned)  # type: ignore[attr-defined]
        return method

    return decorate
