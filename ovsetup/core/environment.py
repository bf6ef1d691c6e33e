"""The typed environment: otopi's `type:value` syntax, the key table, and change tracking."""
from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

TYPES = ("bool", "int", "str", "none", "multi-str")
Validator = Callable[[Any], str | None]


def parse_typed(key: str, text: str) -> Any:
    """Parse `type:value`. Unlike otopi, anything malformed is an error naming the key."""
    kind, sep, raw = text.partition(":")
    if not sep:
        raise UsageError(f"{key}: value {text!r} has no type (write it as type:value, e.g. str:{text})")
    if kind == "none":
        return None
    if kind == "str":
        return raw
    if kind == "multi-str":
        return raw.splitlines()
    if kind == "bool":
        if raw.lower() == "true":
            return True
        if raw.lower() == "false":
            return False
        raise UsageError(f"{key}: bool:{raw} is not a boolean (use bool:True or bool:False)")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"{key}: int:{raw} is not an integer") from None
    raise UsageError(f"{key}: unknown type {kind!r} (use one of {', '.join(TYPES)})")


def type_name(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "multi-str"
    return "object"


def format_typed(value: Any) -> str:
    """The inverse of `parse_typed`; lists become INI continuation lines."""
    kind = type_name(value)
    if kind == "multi-str":
        return "multi-str:" + "\n ".join(str(v) for v in value)
    return f"{kind}:{value}"


def parse_statements(text: str) -> list[tuple[str, Any]]:
    """Split an `--otopi-environment` string with shell rules into (key, value) pairs."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--otopi-environment: {exc}") from None
    pairs = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise UsageError(f"--otopi-environment: {token!r} is not KEY=type:value")
        pairs.append((key, parse_typed(key, value)))
    return pairs


@dataclass(frozen=True)
class EnvKey:
    """One environment key a feature owns, declared once in its plugin's table."""

    name: str
    type: str
    default: Any = None
    secret: bool = False
    answerfile: bool = False  # recorded in generated answer files when the user set or answered it
    postinstall: bool = False  # recorded for re-runs
    summary: str | None = None  # label in the configuration preview
    validator: Validator | None = None  # returns an error message, or None when the value is fine
    help: str = field(kw_only=True)  # what the key means, for --help: required, so no key goes unexplained

    def check(self, value: Any) -> str | None:
        """Problem with `value` for this key, or None. `None` always passes (it means: ask)."""
        if value is None:
            return None
        if type_name(value) != self.type:
            return f"{self.name}: expected {self.type}, got {format_typed(value)!r}"
        if self.validator is not None:
            problem = self.validator(value)
            if problem:
                return f"{self.name}: {problem}"
        return None


class Environment(dict[str, Any]):
    """The single shared state. Remembers which keys the user supplied (command line, files, answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.user_keys: set[str] = set()

    def supply(self, key: str, value: Any) -> None:
        """Set a value the user gave: it overrides plugin defaults and goes to the answer file."""
        self[key] = value
        self.user_keys.add(key)

    def snapshot(self) -> dict[str, str]:
        return {k: format_typed(v) if type_name(v) != "object" else repr(v) for k, v in self.items()}

    def changes(self, old: dict[str, str]) -> Iterable[tuple[str, Any]]:
        new = self.snapshot()
        for key in sorted(new):
            if old.get(key) != new[key]:
                yield key, self[key]
