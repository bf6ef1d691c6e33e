"""The human dialog: notes, questions with validation and re-asking, and recorded answers.

Every answer is recorded as `QUESTION/<n>/<NAME>` (n counts per name), so a run can be replayed; such a
key already in the environment answers the question without asking.
"""
from __future__ import annotations

import getpass
import logging
import sys
import textwrap
from collections.abc import Sequence
from typing import TextIO

from .environment import Environment
from .errors import MissingAnswerError, SetupError

log = logging.getLogger(__name__)
INDENT = " " * 10


class Dialog:
    def __init__(self, env: Environment, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
                 accept_defaults: bool = False) -> None:
        self.env = env
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.accept_defaults = accept_defaults
        self.occurrences: dict[str, int] = {}
        self.secrets: list[str] = []  # hidden answers, for the log filter

    def note(self, text: str = "") -> None:
        for line in text.splitlines() or [""]:
            wrapped = textwrap.wrap(line, 100, break_long_words=False, break_on_hyphens=False) or [""]
            for part in wrapped:
                self.stdout.write(f"{INDENT}{part}\n" if part else "\n")
        self.stdout.flush()

    def query(self, name: str, prompt: str, *, env_key: str, valid: Sequence[str] | None = None,
              case_sensitive: bool = True, default: str | None = None, hidden: bool = False) -> str:
        """Ask `prompt` (which may hold @VALUES@ and @DEFAULT@) until a valid answer arrives."""
        self.occurrences[name] = self.occurrences.get(name, 0) + 1
        question_key = f"QUESTION/{self.occurrences[name]}/{name}"
        valid = list(valid) if valid else None
        text = prompt.replace("@VALUES@", ", ".join(valid or [])).replace("@DEFAULT@", default or "")

        def normal(answer: str) -> str:
            if valid is None:
                return answer
            for candidate in valid:
                same = candidate == answer if case_sensitive else candidate.lower() == answer.lower()
                if same:
                    return candidate
            raise ValueError(answer)

        if question_key in self.env:
            given = str(self.env[question_key])
            try:
                answer = normal(given)
            except ValueError:
                raise SetupError(f"{question_key}: {given!r} is not one of {', '.join(valid or [])}") from None
            self._print_prompt(text, "(hidden)" if hidden else answer)
        elif self.accept_defaults and default is not None:
            answer = normal(default)
            self._print_prompt(text, answer)
        else:
            answer = self._ask(text, name, env_key, normal, default, hidden)
        self.env[question_key] = answer
        if hidden and answer:
            self.secrets.append(answer)
        log.debug("QUESTION %s answered%s", question_key, "" if hidden else f": {answer!r}")
        return answer

    def query_boolean(self, name: str, prompt: str, *, env_key: str, default: bool | None,
                      true: str = "Yes", false: str = "No") -> bool:
        answer = self.query(name, prompt, env_key=env_key, valid=(true, false), case_sensitive=False,
                            default=None if default is None else (true if default else false))
        return answer == true

    def _print_prompt(self, text: str, answer: str) -> None:
        self.stdout.write(f"{INDENT}{text}{answer}\n")
        self.stdout.flush()

    def _ask(self, text: str, name: str, env_key: str, normal, default: str | None, hidden: bool) -> str:
        while True:
            self.stdout.write(f"{INDENT}{text}")
            self.stdout.flush()
            line = self._readline(hidden)
            if line is None:
                self.stdout.write("\n")
                raise MissingAnswerError(
                    f"no answer for '{text.strip().rstrip(':')}' ({name}): input ended; "
                    f"answer it with --otopi-environment=\"{env_key}=...\" or an answer file"
                )
            answer = line.strip() or (default or "")
            if not answer:
                self.stdout.write("[ ERROR ] Please specify a value\n")
                continue
            try:
                return normal(answer)
            except ValueError:
                self.stdout.write("[ ERROR ] Invalid value\n")

    def _readline(self, hidden: bool) -> str | None:
        if hidden and self.stdin.isatty():
            try:
                return getpass.getpass("", stream=self.stdout)
            except EOFError:
                return None
        line = self.stdin.readline()
        return line if line else None
