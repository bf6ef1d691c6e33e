"""A real PostgreSQL for the integration tests: one throwaway cluster (scripts/pg-cluster) per session."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pg-cluster"


@dataclass(frozen=True)
class EngineDB:
    port: int
    host: str = "127.0.0.1"
    user: str = "wsptest"
    password: str = "wsptest-secret"
    database: str = "engine"

    def environment(self) -> str:
        """`--otopi-environment` statements naming this database."""
        return (f"OVESETUP_DB/host=str:{self.host} OVESETUP_DB/port=int:{self.port} "
                f"OVESETUP_DB/user=str:{self.user} OVESETUP_DB/password=str:{self.password} "
                f"OVESETUP_DB/database=str:{self.database}")

    def sql(self, statement: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname=self.database) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def option(self, name: str = "WebSocketProxy") -> list[str]:
        return [row[0] for row in self.sql("select option_value from vdc_options where option_name = %s "
                                           "and version = 'general'", name)]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EngineDB]:
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    folder, port = started.stdout.split()
    try:
        yield EngineDB(port=int(port))
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], capture_output=True, timeout=60)


@pytest.fixture
def engine_db(pg_cluster: EngineDB) -> EngineDB:
    """The session's database with vdc_options as a fresh engine has it."""
    pg_cluster.sql("delete from vdc_options")
    pg_cluster.sql("insert into vdc_options (option_name, option_value, default_value) values "
                   "('WebSocketProxy', 'Off', 'Off'), ('WebSocketProxyTicketValiditySeconds', '120', '120')")
    return pg_cluster


@pytest.fixture
def install_on_free_port(engine_setup):
    """Configure the proxy below a root on a free loopback port, non-interactively; returns the port."""
    from tests.integration.proxy.conftest import free_port

    def install(root: Path, fqdn: str = "localhost") -> int:
        port = free_port()
        env = (f"OVESETUP_CONFIG/websocketProxyConfig=bool:True OVESETUP_CONFIG/fqdn=str:{fqdn} "
               f"OVESETUP_CONFIG/websocketProxyPort=int:{port}")
        result = engine_setup(root, "--accept-defaults", f"--otopi-environment={env}")
        assert result.returncode == 0, result.stdout
        return port
    return install
