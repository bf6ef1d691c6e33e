"""Engine options (`vdc_options`): validation as the engine does it, and the option store.

The embedded default store is one SQLite file shaped like the engine's table. Writes are
transaction elements, so a failed setup run leaves the old value (and no new database file).
"""
from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ovcommon import paths
from ovcommon.errors import Error
from ovcommon.paths import Root

from .core.transaction import Change, Original, atomic_write, make_parents, remove_dirs

if TYPE_CHECKING:
    from .pgstore import Database

log = logging.getLogger(__name__)
VERSION = "general"
WEBSOCKET_PROXY = "WebSocketProxy"
DEFAULTS = {WEBSOCKET_PROXY: "Off", "WebSocketProxyTicketValiditySeconds": "120"}
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d+)$")


class OptionError(Error):
    """An option value or key the engine would refuse; the message says why."""


def validate_websocket_proxy(value: str) -> None:
    """`Off`, `Engine:<port>`, `Host:<port>`, `<host>:<port>` or `[v6]:<port>`, port 1..65535."""
    if value == "Off":
        return
    match = _HOST.match(value)
    if not match:
        raise OptionError(f"WebSocketProxy: {value!r} is not Off, Engine:<port>, Host:<port> or <host>:<port>")
    port = int(match.group(1))
    if not 0 < port < 65536:
        raise OptionError(f"WebSocketProxy: port {port} is out of range 1..65535")


def validate_integer(name: str, value: str) -> None:
    if not value.isdigit():
        raise OptionError(f"{name}: {value!r} is not a positive integer")


VALIDATORS = {
    WEBSOCKET_PROXY: validate_websocket_proxy,
    "WebSocketProxyTicketValiditySeconds": lambda v: validate_integer("WebSocketProxyTicketValiditySeconds", v),
}


def validate(name: str, value: str) -> None:
    if name not in VALIDATORS:
        raise OptionError(f"unknown option {name} (known: {', '.join(sorted(VALIDATORS))})")
    VALIDATORS[name](value)


class OptionStore(Protocol):
    def get(self, name: str) -> str: ...
    def update(self, name: str, value: str) -> OptionWrite: ...
    def describe(self) -> str: ...


SCHEMA = """
create table if not exists vdc_options (
    option_id integer primary key autoincrement,
    option_name varchar(100) not null,
    option_value varchar(4000) not null,
    version varchar(40) not null default 'general',
    unique (option_name, version)
)
"""


class SQLiteStore:
    def __init__(self, path: Path, target: str | None = None) -> None:
        self.path = path
        self.target = target or str(path)  # the target-system path, for uninstall manifests

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def get(self, name: str) -> str:
        if name not in VALIDATORS:
            raise OptionError(f"unknown option {name} (known: {', '.join(sorted(VALIDATORS))})")
        if not self.path.exists():
            return DEFAULTS[name]
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            row = conn.execute("select option_value from vdc_options where option_name=? and version=?",
                               (name, VERSION)).fetchone()
        return row[0] if row else DEFAULTS[name]

    def update(self, name: str, value: str) -> SQLiteOptionWrite:
        validate(name, value)
        return SQLiteOptionWrite(self, name, value)


class OptionWrite:
    """One option as a transaction element: `prepare` opens a database transaction (`conn`) and writes,
    `commit` commits it with the file transaction, `abort` rolls it back or, after commit, restores."""

    def __init__(self, store: OptionStore, name: str, value: str) -> None:
        self.store, self.name, self.value = store, name, value
        self.old: str | None = None
        self.conn: Any = None  # a DB-API connection while the transaction is open
        self.committed = False

    def __str__(self) -> str:
        return f"option {self.name} in {self.store.describe()}"

    def plan(self) -> list[Change]:
        """The option's old and new value (read, never written); nothing when it keeps its value."""
        self.old = self.store.get(self.name)
        if self.old == self.value:
            return []
        return [Change(self.name, "option", summary=f"{self.old} -> {self.value} ({self.store.describe()})")]

    def commit(self) -> None:
        if self.conn is not None:
            self.conn.commit()
            self.conn.close()
            self.conn = None
            self.committed = True
            log.debug("%s set to %r (was %r)", self, self.value, self.old)

    def _rollback_open(self) -> bool:
        """Roll back the transaction if it is still open; True if it was."""
        if self.conn is None:
            return False
        self.conn.rollback()
        self.conn.close()
        self.conn = None
        return True


class SQLiteOptionWrite(OptionWrite):
    """Like a `FileWrite`, it tells the uninstall manifest which file it changed (`path`, `target`,
    `group`, `changed`, `created_dirs`)."""

    group = "core"

    def __init__(self, store: SQLiteStore, name: str, value: str) -> None:
        super().__init__(store, name, value)
        self.store: SQLiteStore = store
        self.path, self.target = store.path, store.target
        self.created_dirs: list[Path] = []
        self.created_file = False
        self.backup: Original | None = None  # the file's bytes and mode before the write

    @property
    def changed(self) -> bool:
        return self.committed

    def plan(self) -> list[Change]:
        path = self.store.path
        option = super().plan()
        if path.exists() and not option:
            return []
        if path.exists():
            return [Change(self.target, "change", path.stat().st_mode & 0o7777, summary="SQLite option store"), *option]
        return [Change(self.target, "create", 0o600, summary="SQLite option store"), *option]

    def prepare(self) -> None:
        self.old = self.store.get(self.name)
        if self.old == self.value and self.store.path.exists():
            return
        self.created_file = not self.store.path.exists()
        if not self.created_file:
            self.backup = Original(self.store.path.read_bytes(), self.store.path.stat().st_mode & 0o7777)
        self.created_dirs = make_parents(self.store.path)
        self.conn = sqlite3.connect(self.store.path, isolation_level=None)
        if self.created_file:
            self.store.path.chmod(0o600)
        self.conn.execute("begin immediate")
        self._write(self.conn, self.value)

    def _write(self, conn: sqlite3.Connection, value: str) -> None:
        conn.execute(SCHEMA)
        for name, default in DEFAULTS.items():
            conn.execute("insert or ignore into vdc_options (option_name, option_value, version) "
                         "values (?, ?, ?)", (name, default, VERSION))
        conn.execute("update vdc_options set option_value=? where option_name=? and version=?",
                     (value, self.name, VERSION))

    def abort(self) -> None:
        """Roll back the open transaction; after commit, put the file's old bytes back (not just the old
        value: "as it was" means the same bytes)."""
        if not self._rollback_open() and self.committed and self.backup and self.backup.content is not None:
            atomic_write(self.store.path, self.backup.content, self.backup.mode)
        if self.created_file:
            self.store.path.unlink(missing_ok=True)
            remove_dirs(self.created_dirs)
        self.committed = False


def open_store(root: Root, database: Database | None = None) -> OptionStore:
    """The engine's option store: its PostgreSQL database when one is given or recorded in
    `10-setup-database.conf` below `root`, else the embedded SQLite file."""
    from . import pgstore

    database = database or recorded_database(root)
    if database is not None:
        return pgstore.PostgresStore(database)
    return SQLiteStore(root.path(paths.OPTIONS_DB), str(paths.OPTIONS_DB))


def recorded_database(root: Root) -> Database | None:
    """The database `10-setup-database.conf` names (oVirt's `ENGINE_DB_*` keys), if any."""
    from ovcommon.configfile import ConfigSyntaxError, load_files

    from . import pgstore

    try:
        return pgstore.from_file_values(load_files([root.path(paths.ENGINE_DB_CONFIG)]))
    except ConfigSyntaxError as exc:
        raise OptionError(str(exc)) from None
