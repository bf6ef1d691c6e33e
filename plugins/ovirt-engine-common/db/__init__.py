"""The engine database: `OVESETUP_DB/*` as given, or as recorded in `10-setup-database.conf`; checked
before any change; recorded (0600, oVirt's `ENGINE_DB_*` keys) for engine-config and later runs.
Without a host, the option store is the embedded SQLite file."""
from __future__ import annotations

from ovcommon import paths
from ovcommon.render import render
from ovsetup import names, options, pgstore
from ovsetup.core.environment import EnvKey
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import FileWrite


def _configured(plugin: Plugin) -> bool:
    return bool(plugin.env[names.DB_HOST])


class DatabasePlugin(Plugin):
    KEYS = (
        EnvKey(names.DB_HOST, "str", answerfile=True, summary="Engine database host",
               help="The engine's PostgreSQL host, whose vdc_options holds WebSocketProxy. Unset: the one "
                    "10-setup-database.conf names, else the embedded SQLite option store."),
        EnvKey(names.DB_PORT, "port", answerfile=True, summary="Engine database port",
               help="The engine database's port (5432 when a host is given)."),
        EnvKey(names.DB_USER, "str", answerfile=True, help="The engine database's user (engine)."),
        EnvKey(names.DB_PASSWORD, "str", secret=True, answerfile=True,
               help="The engine database user's password; passed to libpq as a parameter, never logged."),
        EnvKey(names.DB_DATABASE, "str", answerfile=True, summary="Engine database name",
               help="The engine database's name (engine)."),
        EnvKey(names.DB_SECURED, "bool", answerfile=True, help="Connect to the engine database with TLS (False)."),
    )

    @event(Stage.SETUP)
    def read_recorded(self) -> None:
        recorded = options.recorded_database(self.context.root)
        if recorded is None or (self.env[names.DB_HOST] not in (None, recorded.host)):
            return
        for key, value in ((names.DB_HOST, recorded.host), (names.DB_PORT, recorded.port),
                           (names.DB_USER, recorded.user), (names.DB_PASSWORD, recorded.password),
                           (names.DB_DATABASE, recorded.database), (names.DB_SECURED, recorded.secured)):
            if self.env[key] is None:
                self.env[key] = value

    @event(Stage.VALIDATION, condition=_configured)
    def check_connection(self) -> None:
        database = pgstore.from_keys(self.env)
        self.log.info("Checking %s", database.describe())
        options.open_store(self.context.root, database).get(options.WEBSOCKET_PROXY)

    @event(Stage.MISC, condition=_configured)
    def record(self) -> None:
        database = pgstore.from_keys(self.env)
        if database == options.recorded_database(self.context.root):
            return  # already recorded (possibly by the engine's own setup): keep that file as it is
        self.transaction.append(FileWrite(self.context.root.path(paths.ENGINE_DB_CONFIG),
                                          render("10-setup-database.conf.j2", db=database), mode=0o600,
                                          target=str(paths.ENGINE_DB_CONFIG)))


PLUGINS = (DatabasePlugin,)
