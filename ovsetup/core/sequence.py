"""Ordering events: stage, then priority, then before/after, then the method's qualified name."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from .errors import PluginError
from .events import EventSpec
from .stages import Stage


@dataclass(frozen=True)
class Event:
    spec: EventSpec
    method: Callable[[], None]
    owner: object
    qualname: str  # module.Class.method, otopi's methodName

    @property
    def label(self) -> str:
        return f"{self.qualname} ({self.spec.name})" if self.spec.name else self.qualname


def collect(plugin: object) -> list[Event]:
    """Events of a plugin instance, including those its base classes declare."""
    events = []
    for attr, function in inspect.getmembers(type(plugin), inspect.isfunction):
        spec = getattr(function, "event_spec", None)
        if spec is not None:
            qualname = f"{type(plugin).__module__}.{type(plugin).__name__}.{attr}"
            events.append(Event(spec, getattr(plugin, attr), plugin, qualname))
    return events


def build(events: Iterable[Event]) -> dict[Stage, list[Event]]:
    events = list(events)
    by_name: dict[str, Event] = {}
    for ev in events:
        if ev.spec.name:
            if ev.spec.name in by_name:
                raise PluginError(f"duplicate event name {ev.spec.name}: {by_name[ev.spec.name].qualname} "
                                  f"and {ev.qualname}")
            by_name[ev.spec.name] = ev
    ordering: list[tuple[Event, Event]] = []  # (first, then)
    for ev in events:
        for name in ev.spec.before:
            if name in by_name:
                ordering.append((ev, by_name[name]))
        for name in ev.spec.after:
            if name in by_name:
                ordering.append((by_name[name], ev))
    for first, then in ordering:
        if first.spec.stage > then.spec.stage:
            raise PluginError(f"{then.label} must follow {first.label}, which is in a later stage")
        if first.spec.stage == then.spec.stage and first.spec.priority > then.spec.priority:
            raise PluginError(f"{then.label} must follow {first.label}, which has a later priority")
    sequence: dict[Stage, list[Event]] = {}
    for stage in Stage:
        members = [ev for ev in events if ev.spec.stage == stage]
        if members:
            sequence[stage] = _toposort(members, ordering)
    return sequence


def _toposort(members: list[Event], ordering: list[tuple[Event, Event]]) -> list[Event]:
    graph: dict[int, set[int]] = {id(ev): set() for ev in members}
    index = {id(ev): ev for ev in members}
    for ev in members:
        for other in members:
            if other.spec.priority < ev.spec.priority:
                graph[id(ev)].add(id(other))
    for first, then in ordering:
        if id(first) in graph and id(then) in graph:
            graph[id(then)].add(id(first))
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = " -> ".join(index[i].label for i in exc.args[1])
        raise PluginError(f"cyclic event dependencies: {cycle}") from None
    result = []
    while sorter.is_active():
        layer = sorted((index[i] for i in sorter.get_ready()), key=lambda ev: ev.qualname)
        result.extend(layer)
        sorter.done(*(id(ev) for ev in layer))
    return result
