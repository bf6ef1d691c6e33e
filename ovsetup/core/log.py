"""Logging: a console handler in otopi's `[ INFO  ]` style and a debug log file that never holds secrets."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

ROOT_LOGGER = "ovsetup"
FILTERED = "**FILTERED**"
PRIVATE_KEY = re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----).*?(-----END [A-Z ]*PRIVATE KEY-----)", re.S)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pad = 7 - len(record.levelname)
        level = " " * (pad // 2) + record.levelname + " " * (pad - pad // 2)
        message = record.getMessage().replace("\n", "\n" + " " * 10)
        return f"[{level}] {message}"


class SecretFilteringFormatter(logging.Formatter):
    """Replaces every current secret value, and any PEM private key, with **FILTERED**."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(funcName)s:%(lineno)d %(message)s")
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))

    def scrub(self, text: str) -> str:
        text = PRIVATE_KEY.sub(rf"\1{FILTERED}\2", text)
        for secret in sorted({s for s in self.secrets() if s}, key=len, reverse=True):
            text = text.replace(secret, FILTERED)
        return text


def setup_console(stream: TextIO) -> logging.Handler:
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO)
    handler.setFormatter(ConsoleFormatter())
    logger.addHandler(handler)
    return handler


def setup_file(path: Path, secrets: Callable[[], Iterable[str]]) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    handler = logging.FileHandler(path, encoding="utf-8")
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
