"""A PostgreSQL usage store (psycopg 3): one ledger shared by every process on every host.

Install with ``pip install "openrouter-attribution[postgres]"``. Records go to the table
``usage_records``; ``record_id`` is the primary key and every insert is
``ON CONFLICT (record_id) DO NOTHING``, so two recorders of one call, a retried batch or a replayed
spool keep one row. ``cost`` is ``NUMERIC`` (exact, summed exactly by SQL); ``time`` is epoch seconds
(``double precision``), as in SQLite, so records read back exactly as written and UTC days are
computed from ``floor(time)`` like :func:`~openrouter_attribution.usage.stores.protocol.group_key`.

The schema is versioned in ``usage_schema``; opening the store applies missing migrations inside one
transaction under a PostgreSQL advisory lock, so processes starting together migrate once.

Connections are opened on first use (a server that is down when the app starts does not fail it),
one for writes and one for reads; a connection found closed or broken is replaced on the next use.
Inserts run as statements prepared on the write connection, through psycopg's libpq layer
(:mod:`~openrouter_attribution.usage.stores.postgres.insert`), and :meth:`PostgresUsageStore.write_within` bounds
how long an insert may wait for the server. Every message this module produces or passes on has the
DSN's password redacted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage.records import (
    TotalsBy,
    UsageRecord,
    UsageStoreError,
    UsageTotals,
    check_by,
    check_where,
)
from openrouter_attribution.usage.stores.location import redact
from openrouter_attribution.usage.stores.postgres import insert as pq_insert
from openrouter_attribution.usage.stores.postgres import reads
from openrouter_attribution.usage.stores.postgres.backend import (
    POSTGRES_BACKEND_MIGRATION,
    POSTGRES_BUDGET_SCOPES_MIGRATION,
)
from openrouter_attribution.usage.stores.postgres.daily import DAILY_MIGRATION
from openrouter_attribution.usage.stores.protocol import BackendOwner, Filters
from openrouter_attribution.usage.stores.rows import COLUMNS, from_row, to_row, totals_row

if TYPE_CHECKING:
    from openrouter_attribution.usage.stores.postgres.backend import PostgresBackend

__all__ = ["SCHEMA_VERSION", "PostgresUsageStore"]

# Each entry moves the schema from version i to i + 1; versions 1 to 3 match the SQLite store's (4 and 5
# of SQLite change only its own layout).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS usage_records (
            record_id text COLLATE "C" PRIMARY KEY,
            time double precision NOT NULL,
            "user" text,
            session_id text,
            model_requested text,
            model_used text,
            provider text,
            prompt_tokens bigint,
            completion_tokens bigint,
            cached_tokens bigint,
            reasoning_tokens bigint,
            cost numeric,
            latency_s double precision,
            ttft_s double precision,
            generation_id text,
            streamed boolean NOT NULL,
            outcome text NOT NULL,
            framework text
        )""",
        "CREATE INDEX IF NOT EXISTS usage_records_time ON usage_records (time)",
        'CREATE INDEX IF NOT EXISTS usage_records_user_time ON usage_records ("user", time)',
    ),
    (
        "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'chat'",
        "CREATE INDEX IF NOT EXISTS usage_records_model ON usage_records ((COALESCE(model_used, model_requested)))",
        "CREATE INDEX IF NOT EXISTS usage_records_session_time ON usage_records (session_id, time)",
    ),
    # Reconciliation columns, budget reservations and the two budget functions (usage/stores/postgres/backend.py).
    POSTGRES_BACKEND_MIGRATION,
    # The attribution's metadata as JSON text (SQLite's schema 6): totals and budgets by metadata.<key>.
    ("ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS metadata text",),
    # Budgets by metadata value and budget alerts (usage/stores/postgres/backend.py).
    POSTGRES_BUDGET_SCOPES_MIGRATION,
    # The daily rollup the dashboard's reads add up (daily.py), filled from the records already stored.
    DAILY_MIGRATION,
)

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this release writes."""

logger = logging.getLogger("openrouter_attribution.usage")

_SQLSTATE, _MESSAGE_PRIMARY = 67, 77  # libpq PG_DIAG_SQLSTATE, PG_DIAG_MESSAGE_PRIMARY
_LOCK_KEY = 0x6F726174  # the advisory lock that serialises migrations ("orat")
_QUOTED = tuple('"user"' if c == "user" else c for c in COLUMNS)
_TYPES = ("text", "float8", "text", "text", "text", "text", "text", "int8", "int8", "int8", "int8", "numeric",
          "float8", "float8", "text", "bool", "text", "text", "text", "text")  # fmt: skip
# One statement per batch, whatever its size: each column travels as one array parameter, so the SQL text
# never changes (psycopg prepares it after a few uses) and a batch costs one round trip. A single
# statement in autocommit mode is its own transaction: all rows or none.
_INSERT_MANY = (
    f"INSERT INTO usage_records ({', '.join(_QUOTED)}) "
    f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _TYPES)}) ON CONFLICT (record_id) DO NOTHING"
)
# A batch of one (a lone durable call) is cheaper to send as plain values than as 20 one-element arrays.
_INSERT_ONE = (
    f"INSERT INTO usage_records ({', '.join(_QUOTED)}) VALUES ({', '.join('%s' for _ in COLUMNS)}) "
    "ON CONFLICT (record_id) DO NOTHING"
)
_DAY = "to_char(to_timestamp(floor(time)) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
_KEY_SQL: dict[str, str] = {
    "user": '"user"',
    "model": "COALESCE(model_used, model_requested)",
    "day": _DAY,
    "session": "session_id",
    "provider": "provider",
    "kind": "kind",
}
_PAGE = 1000
# The rollup rows whose records were all deleted (the triggers leave them at zero).
_EMPTIED = "DELETE FROM usage_daily WHERE requests = 0"


def _column(name: str) -> tuple[str, list[object]]:
    """The SQL expression of a group key (a :data:`TOTALS_BY` name or ``metadata.<key>``) and its parameters."""
    return (_KEY_SQL[name], []) if name in _KEY_SQL else reads.column(name)


def _where(
    since: float | None, until: float | None, user: str | None, where: Mapping[str, str] | None = None
) -> tuple[str, list[object]]:
    """The condition of a time range, a user and ``where`` filters (the dashboard reads' condition)."""
    filters = dict(where or {})
    if user is not None and filters.setdefault("user", user) != user:
        since, until = 0.0, 0.0  # two different users asked for: an empty range, so no record
    return reads.where_sql(since, until, filters)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as err:
        raise ConfigurationError(
            'A PostgreSQL ledger needs psycopg 3: pip install "openrouter-attribution[postgres]"'
        ) from err
    return psycopg


class PostgresUsageStore(BackendOwner["PostgresBackend"]):
    """Usage records in a PostgreSQL database (see the module docstring).

    Args:
        dsn: ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``, or a libpq
            key/value string). The password never appears in ``repr``, logs or errors.
        connect_timeout: Seconds to wait for a connection (libpq ``connect_timeout``, at least 1).
        create: When false, the ledger must exist already (what read-only tools want).
        read_only: Read only: every transaction is read-only (``default_transaction_read_only``), nothing is
            migrated, and a ledger whose schema is not this release's is refused (what the dashboard wants).

    Raises:
        ConfigurationError: psycopg is not installed, or ``dsn`` is not a valid connection string.

    Example:
        >>> store = PostgresUsageStore("postgresql://app:secret@db.internal:5432/usage")
        >>> store
        PostgresUsageStore('postgresql://app:***@db.internal:5432/usage')
    """

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0, create: bool = True, read_only: bool = False) -> None:
        self._psycopg = _import_psycopg()
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(dsn)
        except Exception:  # the parser's message may quote the string, password included
            raise ConfigurationError(f"{redact(dsn)!r} is not a valid PostgreSQL connection string") from None
        self._password = str(params.get("password") or "")
        self._dsn = dsn
        self.path = redact(dsn)
        """The DSN with its password redacted."""
        self.connect_timeout = max(1, round(connect_timeout))
        """Seconds to wait for a connection."""
        self.migrated_from: int | None = None
        """The schema version found when the store was first opened, if it was migrated (``0``: new)."""
        self._create = create and not read_only
        self.read_only = read_only
        """Whether every transaction is read-only."""
        self._ready = False
        self._closed = False
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._writer: Any = None
        self._reader: Any = None
        self._prepared: Any = None
        """The write connection the inserts are prepared on."""

    # -- connections -------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """``text`` without this store's password."""
        return text.replace(self._password, "***") if self._password else text

    def _connect(self) -> Any:
        if self._closed:
            raise UsageStoreError(f"the ledger store {self.path} is closed")
        try:
            # UTF-8 whatever the DSN says: the prepared inserts send text as UTF-8 bytes.
            options = {"options": "-c default_transaction_read_only=on"} if self.read_only else {}
            conn = self._psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self.connect_timeout, client_encoding="UTF8", **options
            )
        except self._psycopg.Error as err:
            raise UsageStoreError(f"cannot connect to the ledger {self.path}: {self.scrub(str(err))}") from None
        if not self._ready:
            try:
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
            self._ready = True
        return conn

    def _live(self, conn: Any) -> Any:
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            return self._connect()
        return conn

    def _migrate(self, conn: Any) -> None:
        found = conn.execute("SELECT to_regclass('usage_schema') IS NOT NULL").fetchone()[0]
        if found and conn.execute("SELECT version FROM usage_schema").fetchone()[0] == SCHEMA_VERSION:
            return
        if self.read_only:
            version = conn.execute("SELECT version FROM usage_schema").fetchone()[0] if found else 0
            raise UsageStoreError(
                f"{self.path} has ledger schema {version}; this library reads {SCHEMA_VERSION} read-only: "
                + ("run `openrouter-attribution migrate` first" if version < SCHEMA_VERSION else "upgrade it")
            )
        if not self._create and not conn.execute("SELECT to_regclass('usage_records') IS NOT NULL").fetchone()[0]:
            raise UsageStoreError(f"no ledger at {self.path}")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS usage_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
                "version integer NOT NULL)"
            )
            row = conn.execute("SELECT version FROM usage_schema").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise UsageStoreError(
                    f"{self.path} has ledger schema {version}; this library knows {SCHEMA_VERSION}: upgrade "
                    "openrouter-attribution"
                )
            for step in _MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO usage_schema (one, version) VALUES (true, %s) "
                "ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
                (SCHEMA_VERSION,),
            )
        if version < SCHEMA_VERSION:
            self.migrated_from = version

    def open(self) -> PostgresUsageStore:
        """Connect (and migrate) now instead of at first use; returns the store.

        Raises:
            UsageStoreError: the server cannot be reached or the schema is newer than this release.
        """
        with self._lock:
            self._writer = self._live(self._writer)
        return self

    @property
    def schema_version(self) -> int:
        """The schema version in the database."""
        return int(self._fetch("SELECT version FROM usage_schema", [])[0][0])

    # -- writing -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """One atomic transaction on the write connection (for features built on the store; a row lock
        taken with ``SELECT ... FOR UPDATE`` inside it is held until it ends). Yields the connection.

        Raises:
            UsageStoreError: the server cannot be reached.
            psycopg.Error: the transaction failed (the connection is replaced on the next use).
        """
        with self._lock:
            self._writer = conn = self._live(self._writer)
            try:
                with conn.transaction():
                    yield conn
            except self._psycopg.Error as err:
                if conn.broken or conn.closed:
                    self._writer = None
                raise UsageStoreError(f"cannot write to the ledger {self.path}: {self.scrub(str(err))}") from None

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the write connection and return its rows (for features built on the store).

        The connection is in autocommit mode, so the statement is its own transaction: one round trip.

        Raises:
            UsageStoreError: the server cannot be reached or the statement failed.
        """
        with self._lock:
            self._writer = conn = self._live(self._writer)
            try:
                cursor = conn.execute(sql, params)
                return cursor.fetchall() if cursor.description is not None else []
            except self._psycopg.Error as err:
                if conn.broken or conn.closed:
                    self._writer = None
                raise UsageStoreError(f"cannot write to the ledger {self.path}: {self.scrub(str(err))}") from None

    def write_many(self, records: Sequence[UsageRecord]) -> None:
        """Insert records in one transaction; ids already stored are ignored.

        Raises:
            UsageStoreError: the server cannot be reached or the transaction failed.
        """
        if not records:
            return
        with self._lock:
            self._writer = conn = self._live(self._writer)
            try:
                if self._prepared is not conn:
                    self._prepare(conn)
                if self._prepared is conn and self._insert(conn, records, None):
                    return
                if len(records) == 1:  # a value the prepared inserts do not take: psycopg adapts it
                    conn.execute(_INSERT_ONE, list(to_row(records[0], cost_as_text=False)))
                else:
                    rows = (to_row(r, cost_as_text=False) for r in records)
                    conn.execute(_INSERT_MANY, [list(column) for column in zip(*rows, strict=True)])
            except self._psycopg.Error as err:
                self._drop_broken(conn)
                raise UsageStoreError(f"cannot write to the ledger {self.path}: {self.scrub(str(err))}") from None

    def write_within(self, records: Sequence[UsageRecord], timeout: float) -> bool:
        """Insert records as :meth:`write_many` does, unless that takes longer than ``timeout`` seconds.

        Never connects: without an open write connection it returns False at once. When the server
        has not answered in time, the connection is closed (the insert may still commit: record ids
        keep a later retry to one row) and False is returned.

        Returns:
            True once committed, False when not (or not known to be) committed.

        Raises:
            UsageStoreError: the server refused the insert or the connection broke.
        """
        until = time.monotonic() + timeout
        if not records:
            return True
        if not self._lock.acquire(True, max(timeout, 0.0)):
            return False
        try:
            conn = self._writer
            if conn is None or self._prepared is not conn or conn.closed:
                return False
            try:
                return self._insert(conn, records, until)
            except self._psycopg.Error as err:
                self._drop_broken(conn)
                raise UsageStoreError(f"cannot write to the ledger {self.path}: {self.scrub(str(err))}") from None
        finally:
            self._lock.release()

    def _prepare(self, conn: Any) -> None:
        error = pq_insert.prepare(conn.pgconn)
        if error is None:
            self._prepared = conn
        else:  # the inserts go through Connection.execute instead
            self._prepared = None
            logger.debug("ledger %s: inserts not prepared (%s)", self.path, self.scrub(error))

    def _insert(self, conn: Any, records: Sequence[UsageRecord], until: float | None) -> bool:
        """Run the prepared insert (caller holds ``_lock``); False when it does not apply (nothing was
        sent) or ``until`` passed (the connection is then closed)."""
        statement = pq_insert.encode(records)
        pgconn = conn.pgconn
        if statement is None or pgconn.transaction_status != 0:  # not IDLE: leave it to psycopg
            return False
        result = pq_insert.run(pgconn, *statement, until)
        if result is None:  # mid-statement past the deadline: this connection cannot be used again
            conn.close()
            self._writer = self._prepared = None
            return False
        if result.status == 1:  # COMMAND_OK
            return True
        sqlstate = result.error_field(_SQLSTATE)
        if sqlstate == b"26000":  # the prepared statements are gone (DEALLOCATE ALL, DISCARD ALL)
            self._prepared = None
            return False
        # The primary message only: a DETAIL line may quote the row ("Failing row contains (...)").
        message = (result.error_field(_MESSAGE_PRIMARY) or b"").decode(errors="replace")
        state = (sqlstate or b"").decode(errors="replace")
        raise UsageStoreError(f"cannot write to the ledger {self.path}: {self.scrub(message)} (SQLSTATE {state})")

    def _drop_broken(self, conn: Any) -> None:
        if conn.broken or conn.closed:
            conn.close()
            self._writer = self._prepared = None

    def prune(self, before: float, *, dry_run: bool = False) -> int:
        """Delete the records older than ``before`` (epoch seconds); returns how many (would) go."""
        if dry_run:
            return int(self._fetch("SELECT COUNT(*) FROM usage_records WHERE time < %s", [before])[0][0])
        with self.transaction() as conn:
            deleted = int(conn.execute("DELETE FROM usage_records WHERE time < %s", (before,)).rowcount)
            conn.execute(_EMPTIED)
            return deleted

    # -- reading -----------------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            for attempt in (1, 2):  # a connection dropped since the last read is replaced once
                self._reader = conn = self._live(self._reader)
                try:
                    return conn.execute(sql, params).fetchall()
                except self._psycopg.OperationalError as err:
                    self._reader = None
                    conn.close()
                    if attempt == 2:
                        raise UsageStoreError(f"cannot read the ledger {self.path}: {self.scrub(str(err))}") from None
                except self._psycopg.Error as err:
                    raise UsageStoreError(f"cannot read the ledger {self.path}: {self.scrub(str(err))}") from None
        raise AssertionError("unreachable")

    def iter_records(
        self,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        where: Mapping[str, str] | None = None,
    ) -> Iterator[UsageRecord]:
        """Yield matching records ordered by time, then record id, read in pages (no long transaction)."""
        clause, params = _where(since, until, user, where)
        joiner = " AND " if clause else " WHERE "
        after: tuple[object, object] | None = None
        while True:
            sql = f"SELECT {', '.join(_QUOTED)} FROM usage_records{clause}"
            page_params = list(params)
            if after is not None:
                sql += f"{joiner}(time, record_id) > (%s, %s)"
                page_params.extend(after)
            rows = self._fetch(sql + f" ORDER BY time, record_id LIMIT {_PAGE}", page_params)
            for row in rows:
                yield from_row(row)
            if len(rows) < _PAGE:
                return
            after = (rows[-1][1], rows[-1][0])

    def totals(
        self,
        by: TotalsBy | str | None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Aggregate in SQL (exact ``NUMERIC`` sums; ``cost`` is billed where reconciled); unsorted."""
        check_by(by)
        key, params = ("NULL::text", []) if by is None else _column(by)
        clause, where_params = _where(since, until, user, check_where(where))
        params += where_params
        sql = (
            f"SELECT {key} AS k, COUNT(*), COUNT(*) FILTER (WHERE outcome NOT IN ('ok', 'abandoned')), "
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
            "SUM(COALESCE(billed_cost, cost)), COUNT(*) - COUNT(COALESCE(billed_cost, cost)), SUM(cost), "
            f"COUNT(billed_cost), COUNT(*) FILTER (WHERE user_mismatch) FROM usage_records{clause} GROUP BY 1"
        )
        return [totals_row(row) for row in self._fetch(sql, params)]

    def breakdown(
        self, by: Sequence[TotalsBy | str], since: float | None, until: float | None, where: Filters
    ) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
        """Totals per combination of the ``by`` keys, in one query (see :mod:`.reads`); unsorted."""
        return reads.breakdown(self._fetch, by, since, until, where)

    def daily(
        self, by: Sequence[TotalsBy | str], first: int | None, end: int | None, where: Filters
    ) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
        """Totals per combination of the ``by`` keys over whole UTC days, from the daily rollup; unsorted."""
        return reads.daily(self._fetch, by, first, end, where)

    def recent(self, limit: int, since: float | None, until: float | None, where: Filters) -> list[UsageRecord]:
        """The ``limit`` latest matching records, newest first."""
        return reads.recent(self._fetch, limit, since, until, where)

    def _new_backend(self) -> PostgresBackend:
        from openrouter_attribution.usage.stores.postgres.backend import PostgresBackend

        return PostgresBackend(self)

    def close(self) -> None:
        """Close the connections; idempotent."""
        with self._lock, self._read_lock:
            self._closed = True
            for conn in (self._writer, self._reader):
                if conn is not None:
                    conn.close()
            self._writer = self._reader = None

    def __repr__(self) -> str:
        return f"PostgresUsageStore({self.path!r})"
