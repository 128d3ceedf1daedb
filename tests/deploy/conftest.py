"""A real PostgreSQL server on loopback for the deploy tests, one per session.

The server is `deploy.loopback.postgres.LocalPostgres` (the one the loopback rehearsal
starts). Its `dagster` database holds test_postgres_instance.py's instance; other files
create their own (`postgres.create_database(name)`). Skipped only when the PostgreSQL
server binaries are not installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.loopback.postgres import LocalPostgres, Postgres, PostgresMissing


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        server = LocalPostgres(db="dagster")
    except PostgresMissing as missing:
        pytest.skip(str(missing))
    with server as running:
        print(f"\nPostgreSQL on {running.host}:{running.port} ready in {running.startup_s:.2f}s")
        yield running
