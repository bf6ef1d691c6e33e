"""The engine's PostgreSQL database as the option store, with psycopg 3.

psycopg is imported only when a database is configured, so the embedded (SQLite) path stays light.
Connection parameters go to libpq as keyword arguments, never on a command line; errors become one
line naming host, port and database, never the password.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import names
from .options import DEFAULTS, VALIDATORS, VERSION, OptionError, OptionWrite, validate

log = logging.getLogger(__name__)
DEFAULT_PORT = 5432


@dataclass(frozen=True)
class Database:
    """Where the engine database is; `password` is never shown (repr included)."""

    host: str
    port: int = DEFAULT_PORT
    user: str = "engine"
    password: str = field(default="", repr=False)
    database: str = "engine"
    secured: bool = False

    def describe(self) -> str:
        return f"the engine database {self.database} on {self.host}:{self.port}"

    def connect(self):  # type: ignore[no-untyped-def]
        try:
            import psycopg
        except ImportError:
            raise OptionError(f"{self.describe()} needs psycopg 3 (pip install 'ovirt-engine-wsp[pg]')") from None

        try:
            return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                   dbname=self.database, sslmode="require" if self.secured else "prefer",
                                   connect_timeout=10)
        except psycopg.Error as exc:
            raise OptionError(f"cannot connect to {self.describe()}: {self.reason(exc)}") from None

    def reason(self, exc: Exception) -> str:
        """The first line of a psycopg error, without the password."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return text.replace(self.password, "**FILTERED**") if self.password else text


def from_file_values(values: Mapping[str, str]) -> Database | None:
    """The database that `10-setup-database.conf` values (oVirt's `ENGINE_DB_*`) name, or None without a host."""
    host = values.get("ENGINE_DB_HOST")
    if not host:
        return None
    port = values.get("ENGINE_DB_PORT") or str(DEFAULT_PORT)
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise OptionError(f"ENGINE_DB_PORT={port[:20]!r} is not a port number (1..65535)")
    return Database(host=host, port=int(port), user=values.get("ENGINE_DB_USER") or "engine",
                    password=values.get("ENGINE_DB_PASSWORD", ""),
                    database=values.get("ENGINE_DB_DATABASE") or "engine",
                    secured=values.get("ENGINE_DB_SECURED", "").lower() in ("true", "yes", "1", "t", "y"))


def from_keys(env: Mapping[str, Any]) -> Database | None:
    """The database the `OVESETUP_DB/*` values name, or None without a host (the embedded store)."""
    if not env.get(names.DB_HOST):
        return None
    return Database(host=env[names.DB_HOST], port=env.get(names.DB_PORT) or DEFAULT_PORT,
                    user=env.get(names.DB_USER) or "engine", password=env.get(names.DB_PASSWORD) or "",
                    database=env.get(names.DB_DATABASE) or "engine", secured=bool(env.get(names.DB_SECURED)))


class PostgresStore:
    """`vdc_options` in the engine's database: the `general` row of each option."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def describe(self) -> str:
        return self.database.describe()

    def get(self, name: str) -> str:
        if name not in VALIDATORS:
            raise OptionError(f"unknown option {name} (known: {', '.join(sorted(VALIDATORS))})")
        with self.database.connect() as conn:
            value = self.read(conn, name)
        return DEFAULTS[name] if value is None else value

    def read(self, conn: Any, name: str) -> str | None:
        import psycopg

        try:
            row = conn.execute("select option_value from vdc_options where option_name = %s and version = %s",
                               (name, VERSION)).fetchone()
        except psycopg.errors.UndefinedTable:
            raise OptionError(f"{self.describe()} has no vdc_options table") from None
        except psycopg.Error as exc:
            raise OptionError(f"cannot read vdc_options in {self.describe()}: {self.database.reason(exc)}") from None
        return None if row is None else row[0]

    def write(self, conn: Any, name: str, value: str | None) -> None:
        """Set the `general` row (insert it if missing); None deletes it."""
        import psycopg

        try:
            if value is None:
                conn.execute("delete from vdc_options where option_name = %s and version = %s", (name, VERSION))
                return
            cursor = conn.execute("update vdc_options set option_value = %s where option_name = %s and version = %s",
                                  (value, name, VERSION))
            if cursor.rowcount == 0:  # newer engines' tables also hold default_value: fill it as they do
                with_default = conn.execute("select 1 from information_schema.columns where table_name = "
                                            "'vdc_options' and column_name = 'default_value'").fetchone()
                columns, values = ("option_name, option_value, version", (name, value, VERSION))
                if with_default:
                    columns, values = columns + ", default_value", (*values, DEFAULTS[name])
                conn.execute(f"insert into vdc_options ({columns}) values ({', '.join(['%s'] * len(values))})",
                             values)
        except psycopg.Error as exc:
            raise OptionError(f"cannot write {name} in {self.describe()}: {self.database.reason(exc)}") from None

    def update(self, name: str, value: str) -> PostgresOptionWrite:
        validate(name, value)
        return PostgresOptionWrite(self, name, value)


class PostgresOptionWrite(OptionWrite):
    """After commit, abort restores the old row (until the run ends)."""

    store: PostgresStore

    def prepare(self) -> None:
        self.conn = self.store.database.connect()
        self.old = self.store.read(self.conn, self.name)
        if self.old == self.value:
            self.conn.close()
            self.conn = None
            return
        self.store.write(self.conn, self.name, self.value)

    def abort(self) -> None:
        if not self._rollback_open() and self.committed:
            with self.store.database.connect() as conn:
                self.store.write(conn, self.name, self.old)
        self.committed = False

