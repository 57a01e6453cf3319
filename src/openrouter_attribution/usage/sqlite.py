"""A SQLite usage store that many threads and processes can write at once.

Concurrency: the database runs in WAL mode (https://www.sqlite.org/wal.html),
so readers never block the writer; every batch is one ``BEGIN IMMEDIATE``
transaction, and a writer that finds the database locked by another process
waits up to ``busy_timeout`` seconds before failing. Inside one process the
store shares a single connection guarded by a lock.

Cost is stored as TEXT holding the exact decimal (``"0.00000015"``), never as
REAL. SQL sums it with ``usage_decimal_sum``, an aggregate this store
registers on its connection, so totals are exact to the last digit. Micro-dollar
integers were rejected: OpenRouter costs routinely have more than six decimals.
Other tools reading the file can ``CAST(cost AS REAL)`` for approximate sums.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from openrouter_attribution.usage.records import (
    TOTALS_BY,
    TotalsBy,
    UsageRecord,
    UsageStoreError,
    UsageTotals,
    add_costs,
    format_cost,
)

__all__ = ["SQLiteUsageStore"]

SCHEMA_VERSION = 1

_COLUMNS = (
    "record_id",
    "time",
    "user",
    "session_id",
    "model_requested",
    "model_used",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "latency_s",
    "ttft_s",
    "generation_id",
    "streamed",
    "outcome",
    "framework",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_records (
    record_id TEXT PRIMARY KEY NOT NULL,
    time REAL NOT NULL,
    user TEXT,
    session_id TEXT,
    model_requested TEXT,
    model_used TEXT,
    provider TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cached_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost TEXT,
    latency_s REAL,
    ttft_s REAL,
    generation_id TEXT,
    streamed INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    framework TEXT
);
CREATE INDEX IF NOT EXISTS usage_records_time ON usage_records (time);
CREATE INDEX IF NOT EXISTS usage_records_user_time ON usage_records (user, time);
"""

_INSERT = (
    f"INSERT OR IGNORE INTO usage_records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)

# floor(time) keeps SQL and Python (storage.group_key) on the same UTC day near midnight.
_DAY = "strftime('%Y-%m-%d', CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)), 'unixepoch')"
_KEY_SQL: dict[str, str] = {
    "user": "user",
    "model": "COALESCE(model_used, model_requested)",
    "day": _DAY,
    "session": "session_id",
    "provider": "provider",
}

_PAGE = 1000


class _DecimalSum:
    """SQLite aggregate: exact sum of decimal TEXT values, NULLs skipped, NULL if none."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = add_costs(self.total, Decimal(value))

    def finalize(self) -> str | None:
        return None if self.total is None else format_cost(self.total)


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)
    return "locked" in str(err) or "busy" in str(err)


def _to_row(rec: UsageRecord) -> tuple[object, ...]:
    return (
        rec.record_id,
        rec.time,
        rec.user,
        rec.session_id,
        rec.model_requested,
        rec.model_used,
        rec.provider,
        rec.prompt_tokens,
        rec.completion_tokens,
        rec.cached_tokens,
        rec.reasoning_tokens,
        None if rec.cost is None else format_cost(rec.cost),
        rec.latency_s,
        rec.ttft_s,
        rec.generation_id,
        int(rec.streamed),
        rec.outcome,
        rec.framework,
    )


def _from_row(row: Sequence[object]) -> UsageRecord:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["streamed"] = bool(data["streamed"])
    return UsageRecord.from_dict(data)


def _where(since: float | None, until: float | None, user: str | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("time >= ?")
        params.append(since)
    if until is not None:
        clauses.append("time < ?")
        params.append(until)
    if user is not None:
        clauses.append("user = ?")
        params.append(user)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SQLiteUsageStore:
    """Usage records in one SQLite file (see the module docstring for concurrency and cost).

    Args:
        path: The database file (parent directories are created), or ``":memory:"``.
        busy_timeout: Seconds a write waits for another process's lock before failing.
        create: When false, open an existing ledger only and raise :class:`UsageStoreError`
            if there is none (what read-only tools such as the CLI want).

    Raises:
        UsageStoreError: ``create=False`` and no ledger exists at ``path``.
        sqlite3.Error, OSError: the file cannot be created or opened.

    Example:
        >>> store = SQLiteUsageStore(":memory:")
        >>> store.write_many([UsageRecord(user="app_1", cost=Decimal("0.1")), UsageRecord(user="app_1")])
        >>> store.totals("user")[0].cost
        Decimal('0.1')
        >>> store.close()
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0, create: bool = True
    ) -> None:
        self.path = os.fspath(path)
        """The database file."""
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        memory = self.path == ":memory:"
        if create and not memory:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if create or memory:
            target, uri = (self.path if memory else os.path.expanduser(self.path)), False
        else:
            quoted = urllib.parse.quote(os.path.abspath(os.path.expanduser(self.path)))
            target, uri = f"file:{quoted}?mode=rw", True
        try:
            conn = sqlite3.connect(
                target, timeout=busy_timeout, isolation_level=None, check_same_thread=False, uri=uri
            )
        except sqlite3.OperationalError as err:
            if not create:
                raise UsageStoreError(f"no ledger at {self.path}") from err
            raise
        try:
            self._configure_connection(conn)
            if create:
                self._create_schema(conn)
            else:
                self._check_schema(conn)
        except sqlite3.DatabaseError as err:
            conn.close()
            if not create:
                raise UsageStoreError(f"{self.path} is not a usage ledger: {err}") from err
            raise
        except BaseException:
            conn.close()
            raise
        # typeshed types aggregate values as int; ours receives the TEXT cost column.
        conn.create_aggregate("usage_decimal_sum", 1, _DecimalSum)  # type: ignore[arg-type]
        self._conn: sqlite3.Connection | None = conn

    def _configure_connection(self, conn: sqlite3.Connection) -> None:
        """Per-connection settings; subclasses may add pragmas (tests use ``max_page_count``)."""
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs an exclusive lock and SQLite reports SQLITE_BUSY for it without calling
        # the busy handler when other processes open the same new file at once: retry until busy_timeout.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._create_schema_once(conn)
                return
            except sqlite3.OperationalError as err:
                if not _is_busy(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def _create_schema_once(self, conn: sqlite3.Connection) -> None:
        # WAL is persistent in the file; a filesystem without WAL support keeps its journal mode.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UsageStoreError(
                    f"{self.path} has ledger schema {version}; this library knows {SCHEMA_VERSION}"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_records'"
            ).fetchone()
        except sqlite3.DatabaseError as err:
            raise UsageStoreError(f"{self.path} is not a usage ledger: {err}") from err
        if not found:
            raise UsageStoreError(f"{self.path} is not a usage ledger")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise UsageStoreError(f"the ledger store {self.path} is closed")
        return self._conn

    def write_many(self, records: Sequence[UsageRecord]) -> None:
        """Insert records in one transaction; ids already stored are ignored.

        Raises:
            sqlite3.Error: locked beyond ``busy_timeout``, disk full, read-only file, ...
        """
        rows = [_to_row(rec) for rec in records]
        if not rows:
            return
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    # The original error propagates; a failed rollback adds nothing to it.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")

    def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise UsageStoreError(f"cannot read the ledger {self.path}: {err}") from err

    def iter_records(
        self, since: float | None = None, until: float | None = None, user: str | None = None
    ) -> Iterator[UsageRecord]:
        """Yield matching records ordered by time, then record id.

        Reads in pages without holding a transaction or the lock between pages,
        so a slow consumer never blocks writers.
        """
        where, params = _where(since, until, user)
        cursor_clause = " AND " if where else " WHERE "
        after: tuple[object, object] | None = None
        while True:
            sql = f"SELECT {', '.join(_COLUMNS)} FROM usage_records{where}"
            page_params = list(params)
            if after is not None:
                sql += f"{cursor_clause}(time, record_id) > (?, ?)"
                page_params.extend(after)
            rows = self._fetch(sql + f" ORDER BY time, record_id LIMIT {_PAGE}", page_params)
            for row in rows:
                yield _from_row(row)
            if len(rows) < _PAGE:
                return
            after = (rows[-1][1], rows[-1][0])

    def totals(
        self,
        by: TotalsBy | None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
    ) -> list[UsageTotals]:
        """Aggregate in SQL (exact cost sums); unsorted."""
        if by is not None and by not in TOTALS_BY:
            raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(TOTALS_BY)}")
        key = "NULL" if by is None else _KEY_SQL[by]
        where, params = _where(since, until, user)
        sql = (
            f"SELECT {key} AS k, COUNT(*), COALESCE(SUM(outcome NOT IN ('ok', 'abandoned')), 0), "
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
            f"usage_decimal_sum(cost), COUNT(*) - COUNT(cost) FROM usage_records{where} GROUP BY k"
        )
        rows = self._fetch(sql, params)
        return [
            UsageTotals(
                key=k,
                requests=n,
                errors=e,
                prompt_tokens=p,
                completion_tokens=c,
                cached_tokens=ca,
                reasoning_tokens=r,
                cost=None if cost is None else Decimal(str(cost)),
                unknown_cost_requests=u,
            )
            for k, n, e, p, c, ca, r, cost, u in rows
        ]

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteUsageStore({self.path!r})"
