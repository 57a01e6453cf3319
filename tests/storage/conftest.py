"""Backends for the store contract tests: a real SQLite file and a real PostgreSQL server.

The PostgreSQL server is a throwaway cluster the suite starts itself (``openrouter_attribution.testing.
postgres``) once per session, with a fresh database per test. Without PostgreSQL binaries the
PostgreSQL cases skip with a one-line reason, except when ``CI=true``: then they fail.
A new backend is one more entry in ``BACKENDS`` and one branch in :func:`backend`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openrouter_attribution.testing.postgres import PostgresServer, PostgresUnavailable
from openrouter_attribution.usage.stores.sqlite.store import SQLiteUsageStore, register_functions

BACKENDS = ["sqlite", "postgres"]
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (fsync off: the tests kill clients, not the server)."""
    try:
        server = PostgresServer(fsync=False)
    except PostgresUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and PostgreSQL is unavailable: {err}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {err}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fold_inbox(path: str) -> None:
    """Have SQL run outside the library see every committed record: opening a ledger folds the records
    small commits left in ``usage_inbox`` into ``usage_records`` (what the README tells other tools)."""
    if os.path.exists(path):
        SQLiteUsageStore(path, create=False).close()


@dataclass
class Backend:
    """One store under test: where it is, and a way to look at its rows without the library."""

    name: str
    location: str
    tmp_path: Path
    server: PostgresServer | None = None

    def rows(self, sql: str = "SELECT record_id FROM usage_records") -> list[tuple[Any, ...]]:
        """Run ``sql`` directly against the database (the tests' independent view of what is stored)."""
        if self.name == "sqlite":
            fold_inbox(self.location)
            with contextlib.closing(sqlite3.connect(self.location)) as conn:
                return conn.execute(sql).fetchall()
        import psycopg

        with psycopg.connect(self.location) as conn:
            return conn.execute(sql).fetchall()

    def write(self, sql: str) -> None:
        """Run a data-changing statement directly against the database and commit it."""
        if self.name == "sqlite":
            fold_inbox(self.location)
            with contextlib.closing(sqlite3.connect(self.location)) as conn:
                register_functions(conn)  # the daily rollup's triggers call them
                conn.execute(sql)
                conn.commit()
            return
        import psycopg

        with psycopg.connect(self.location) as conn:
            conn.execute(sql)

    def record_ids(self) -> list[str]:
        # SQLite: the view of both tables, so records still in the inbox count while the store is locked.
        table = "usage_all" if self.name == "sqlite" else "usage_records"
        return [row[0] for row in self.rows(f"SELECT record_id FROM {table}")]


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An empty backend of ``name`` (one of ``BACKENDS``), for fixtures that add cases of their own."""
    if name == "sqlite":
        return Backend("sqlite", str(tmp_path / "usage.db"), tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    dsn = server.create_database(f"t{os.getpid()}_{next(_databases)}")
    return Backend("postgres", dsn, tmp_path, server)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each backend in turn, empty."""
    return make_backend(request.param, request, tmp_path)
