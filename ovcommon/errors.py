"""The one error base both sides share, and the one entry wrapper every console script runs under.

A user error is an `Error`: its message is one line a user can act on, its class says the exit code.
The wrapper prints it as `<prog>: <message>` on stderr and returns the code; a traceback is never a
user's answer (anything else is a defect, and Python's own traceback shows it).
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable

Main = Callable[[list[str] | None], int]


class Error(Exception):
    """A failure reported to the user as one line; the process exits with `exit_code`."""

    exit_code = 1


def one_line(message: str, limit: int = 1000) -> str:
    """The message as one line (newlines become spaces), cut at `limit` characters."""
    text = " ".join(message.split("\n")).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def entry(prog: str) -> Callable[[Main], Main]:
    """Wrap a `main(argv) -> int`: an `Error` becomes one line on stderr and its exit code, Ctrl-C 130."""

    def wrap(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except Error as exc:
                print(f"{prog}: {one_line(str(exc) or type(exc).__name__)}", file=sys.stderr)
                return exc.exit_code
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return 130
        return run
    return wrap
