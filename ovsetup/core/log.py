"""Logging: a console handler in otopi's `[ INFO  ]` style and a debug log file that never holds secrets."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

ROOT_LOGGER = "ovsetup"
FILTERED = "**FILTERED**"
PRIVATE_KEY = re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----).*?(-----END [A-Z ]*PRIVATE KEY-----)", re.S)


Secrets = Callable[[], Iterable[str]]


def scrub(text: str, secrets: Secrets) -> str:
    """Every current secret value, and any PEM private key, replaced with **FILTERED**."""
    text = PRIVATE_KEY.sub(rf"\1{FILTERED}\2", text)
    for secret in sorted({s for s in secrets() if s}, key=len, reverse=True):
        text = text.replace(secret, FILTERED)
    return text


def no_secrets() -> Iterable[str]:
    return ()


class ConsoleFormatter(logging.Formatter):
    """otopi's `[ INFO  ]` lines; secrets filtered as in the log file."""

    def __init__(self, secrets: Secrets = no_secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        pad = 7 - len(record.levelname)
        level = " " * (pad // 2) + record.levelname + " " * (pad - pad // 2)
        message = scrub(record.getMessage(), self.secrets).replace("\n", "\n" + " " * 10)
        return f"[{level}] {message}"


class SecretFilteringFormatter(logging.Formatter):
    """The log file's lines, with every current secret value and any PEM private key filtered."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(funcName)s:%(lineno)d %(message)s")
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record), self.secrets)


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The console. If it goes away (a closed pipe), the run goes on with its log file only, instead of
    logging's traceback for every record."""

    gone = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.gone:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if isinstance(sys.exc_info()[1], OSError):
            self.gone = True
        else:
            super().handleError(record)


class LogFileHandler(logging.FileHandler):
    """The debug log file. If it cannot be written (a full disk), the console gets one warning and the
    log stops, instead of logging's traceback for every record."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def flush(self) -> None:
        if not self.failed:
            super().flush()

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            self._give_up(exc)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self._give_up(sys.exc_info()[1])

    def _give_up(self, exc: BaseException | None) -> None:
        if self.failed:
            return
        self.failed = True
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        logging.getLogger(ROOT_LOGGER).warning("Cannot write the log file %s: %s; the log ends here",
                                               self.baseFilename, reason)


def setup_console(stream: TextIO, secrets: Secrets = no_secrets) -> logging.Handler:
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = ConsoleHandler(stream)
    handler.setLevel(logging.INFO)
    handler.setFormatter(ConsoleFormatter(secrets))
    logger.addHandler(handler)
    return handler


def setup_file(path: Path, secrets: Secrets) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    handler = LogFileHandler(path, encoding="utf-8")
    path.chmod(0o600)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(SecretFilteringFormatter(secrets))
    logging.getLogger(ROOT_LOGGER).addHandler(handler)
    return handler


def close_handlers(handlers: Iterable[logging.Handler]) -> None:
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in handlers:
        handler.flush()
        handler.close()
        logger.removeHandler(handler)
