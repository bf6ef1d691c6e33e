"""oVirt's shell-like `KEY=value` configuration files.

Syntax, as oVirt's `configfile.py` reads it: blank lines and `#` comments are skipped; an optional
`export ` prefix is allowed; in a value, double quotes group (with `\\` escapes and `${VAR}`
expansion inside), single quotes group literally, an unquoted `\\` escapes the next character, and
unquoted whitespace or `#` ends the value. `${VAR}` expands a key read earlier. Files are read in
order and the last value wins. Files are UTF-8 and hold no NUL character; anything else is a
`ConfigSyntaxError` naming the file, the line and (when it can be read) the key.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import Error

_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
_KEY_BYTES = re.compile(rb"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


class ConfigSyntaxError(Error, ValueError):
    """A line that is not `KEY=value`, or a value that does not parse; `key` names it when known."""

    def __init__(self, message: str, key: str = "config") -> None:
        super().__init__(message)
        self.key = key


def _expand(text: str, known: Mapping[str, str], where: str, key: str) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in known:
            raise ConfigSyntaxError(f"{where}: ${{{name}}} is not defined", key)
        return known[name]

    return _VAR.sub(repl, text)


def parse_value(raw: str, known: Mapping[str, str], where: str = "value", key: str = "config") -> str:
    """Parse the right-hand side of one `KEY=value` line."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == '"':
            end = i + 1
            chunk: list[str] = []
            while end < n and raw[end] != '"':
                variable = _VAR.match(raw, end)
                if variable:  # expanded here, so an escaped \${ stays literal
                    chunk.append(_expand(variable.group(0), known, where, key))
                    end = variable.end()
                    continue
                if raw[end] == "\\" and end + 1 < n:
                    end += 1
                chunk.append(raw[end])
                end += 1
            if end >= n:
                raise ConfigSyntaxError(f"{where}: unterminated double quote", key)
            out.append("".join(chunk))
            i = end + 1
        elif ch == "'":
            end = raw.find("'", i + 1)
            if end < 0:
                raise ConfigSyntaxError(f"{where}: unterminated single quote", key)
            out.append(raw[i + 1:end])
            i = end + 1
        elif ch == "\\":
            if i + 1 < n:
                out.append(raw[i + 1])
            i += 2
        elif ch.isspace() or ch == "#":
            rest = raw[i:].strip()
            if rest and not rest.startswith("#"):
                raise ConfigSyntaxError(f"{where}: unexpected text after the value: {rest[:20]!r}", key)
            break
        else:
            end = i
            while end < n and raw[end] not in "\"'\\#" and not raw[end].isspace():
                end += 1
            out.append(_expand(raw[i:end], known, where, key))
            i = end
    return "".join(out)


def parse_text(text: str, known: Mapping[str, str] | None = None, source: str = "<text>",
               sources: dict[str, str] | None = None) -> dict[str, str]:
    """Parse one file's text; `known` holds keys read before it (for `${VAR}`); `sources`, when
    given, records `source` for every key this text sets."""
    values: dict[str, str] = dict(known or {})
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigSyntaxError(f"{source}:{number}: not a KEY=value line")
        key = match.group("key")
        if "\0" in line:
            raise ConfigSyntaxError(f"{source}:{number}: the value holds a NUL character", key)
        values[key] = parse_value(match.group("value"), values, f"{source}:{number}", key)
        if sources is not None:
            sources[key] = source
    return values


def decode(data: bytes, source: str) -> str:
    """A file's bytes as UTF-8 text, or a ConfigSyntaxError naming the line (and its key) that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = data.count(b"\n", 0, exc.start) + 1
        line = data[data.rfind(b"\n", 0, exc.start) + 1:]
        match = _KEY_BYTES.match(line)
        key = match.group(1).decode() if match else "config"
        raise ConfigSyntaxError(f"{source}:{number}: not UTF-8 text", key) from None


def conf_d_files(directory: Path) -> list[Path]:
    """The `*.conf` files of a `.d` directory, sorted by name (missing directory: none)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.conf") if p.is_file())


def load_files(files: Iterable[Path], sources: dict[str, str] | None = None) -> dict[str, str]:
    """Read the files in order, skipping missing ones; the last value of each key wins (and, when
    `sources` is given, its file is recorded there)."""
    values: dict[str, str] = {}
    for path in files:
        if not path.exists():
            continue
        values = parse_text(decode(path.read_bytes(), str(path)), values, str(path), sources)
    return values


def parse_bool(value: str) -> bool:
    """oVirt's boolean: t, true, y, yes, 1 are true; f, false, n, no, 0 and empty are false."""
    lowered = value.strip().lower()
    if lowered in ("t", "true", "y", "yes", "1"):
        return True
    if lowered in ("f", "false", "n", "no", "0", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")
