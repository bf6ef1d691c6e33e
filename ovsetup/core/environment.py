"""The typed environment: otopi's `type:value` syntax, the key table, and change tracking."""
from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

TYPES = ("bool", "int", "str", "none", "multi-str")
KEY_TYPES = (*TYPES, "port")  # a port is an int in 1..65535
SECRET_WORDS = re.compile(r"password|secret|passphrase", re.I)
SHOWN = 40  # characters of a refused value an error message shows
Validator = Callable[[Any], str | None]
_MISSING = object()


def secret_name(key: str) -> bool:
    """A key whose name says it holds a secret (also keys of components we do not have)."""
    return bool(SECRET_WORDS.search(key))


def cut(text: str) -> str:
    """`text` as a message may show it: at most SHOWN characters."""
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text)} characters)"


def shown(key: str, text: str) -> str:
    """A refused value as an error message may show it: never a secret, never more than SHOWN characters."""
    return "**FILTERED**" if secret_name(key) else cut(text)


def parse_typed(key: str, text: str) -> Any:
    """Parse `type:value`. Unlike otopi, anything malformed is an error naming the key; the message
    shows the value only if it is not a secret, and cut short."""
    kind, sep, raw = text.partition(":")
    name = cut(key)
    if not sep:
        raise UsageError(f"{name}: value {shown(key, text)!r} has no type (write it as type:value, e.g. str:...)")
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
        raise UsageError(f"{name}: bool:{shown(key, raw)} is not a boolean (use bool:True or bool:False)")
    if kind == "int":
        if raw.strip().isascii():  # int() also takes other scripts' digits: an answer file means ASCII
            with contextlib.suppress(ValueError):
                return int(raw)
        raise UsageError(f"{name}: int:{shown(key, raw)} is not an integer")
    raise UsageError(f"{name}: unknown type {shown('', kind)!r} (use one of {', '.join(TYPES)})")


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
            raise UsageError(f"--otopi-environment: {shown(token, token)!r} is not KEY=type:value")
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
        expected = "int" if self.type == "port" else self.type
        if type_name(value) != expected:
            got = (f"a {type_name(value)} value (not shown: a secret)" if self.secret or secret_name(self.name)
                   else repr(shown(self.name, format_typed(value))))
            return f"{self.name}: expected {expected}, got {got}"
        if self.type == "port" and not 0 < value < 65536:
            return f"{self.name}: port {value} is out of range 1..65535"
        if self.validator is not None:
            problem = self.validator(value)
            if problem:
                return f"{self.name}: {self._hide(problem, value)}"
        return None

    def _hide(self, problem: str, value: Any) -> str:
        """A validator's message with the value cut (or filtered, for a secret), whatever the validator wrote."""
        if not isinstance(value, str) or not value:
            return problem
        if self.secret or secret_name(self.name):
            return problem.replace(repr(value), "'**FILTERED**'").replace(value, "**FILTERED**")
        return problem.replace(repr(value), repr(cut(value))).replace(value, cut(value))


class Environment(dict[str, Any]):
    """The single shared state. Remembers which keys the user supplied (command line, files, answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.user_keys: set[str] = set()
        self.version = 0  # counts changes, so what is derived from the whole environment is cached

    def __setitem__(self, key: str, value: Any) -> None:
        self.version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.version += 1
        super().__delitem__(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.version += 1
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.version += 1
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self.version += 1
        return super().pop(*args)

    def supply(self, key: str, value: Any) -> None:
        """Set a value the user gave: it overrides plugin defaults and goes to the answer file."""
        self[key] = value
        self.user_keys.add(key)

    def snapshot(self) -> dict[str, Any]:
        """A copy to compare with after an event (lists are copied: they may change in place)."""
        return {k: v.copy() if type(v) is list else v for k, v in self.items()}

    def changes(self, old: dict[str, Any]) -> Iterable[tuple[str, Any]]:
        """Keys whose value or type differs from the snapshot `old`, sorted (cheap: called after every event)."""
        changed = [key for key, value in self.items()
                   if (was := old.get(key, _MISSING)) is not value and (type(was) is not type(value) or was != value)]
        for key in sorted(changed):
            yield key, self[key]
