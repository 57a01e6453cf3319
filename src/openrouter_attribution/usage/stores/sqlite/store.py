"""A SQLite usage store that many threads and processes can write at once.

Concurrency: the database runs in WAL mode (https://www.sqlite.org/wal.html),
so readers never block the writer; every batch is one ``BEGIN IMMEDIATE``
transaction, and a writer that finds the database locked by another process
waits up to ``busy_timeout`` seconds before failing. Inside one process the
store writes through one connection guarded by a lock and reads through a second.
A record whose ``record_id`` is stored already is skipped (``ON CONFLICT DO NOTHING``).

Small commits (one durable call's record, a few from threads finishing together) append to
``usage_inbox``, a table without indexes, and are folded into ``usage_records`` by the commit that
brings a store's appends to :data:`FOLD_AT`, by the store's next batch, by every :meth:`transaction`
(budgets, reconciliation, prune), and when a ledger opens or closes. Reads query both tables (the
view ``usage_all`` holds every record once), so what a call committed is visible to every reader at
once; other tools reading the file should query ``usage_all``.

Durability: ``synchronous = NORMAL`` in WAL mode: a committed transaction survives
the process being killed (SIGKILL included); an operating-system crash or power
loss can undo the last transactions before it.

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
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import chain
from typing import TYPE_CHECKING, Any

from openrouter_attribution.usage.records import (
    FIELDS,
    TotalsBy,
    UsageRecord,
    UsageStoreError,
    UsageTotals,
    add_costs,
    check_by,
    check_where,
    format_cost,
    metadata_json,
    sum_costs,
)
from openrouter_attribution.usage.stores.protocol import BackendOwner, Filters
from openrouter_attribution.usage.stores.rows import COLUMNS, from_row, totals_row
from openrouter_attribution.usage.stores.sqlite import reads
from openrouter_attribution.usage.stores.sqlite.schema import FOLD as _FOLD
from openrouter_attribution.usage.stores.sqlite.schema import (
    FOLD_AT,
    INBOX_MAX,
    ROWS_AT_ONCE,
    SCHEMA_VERSION,
    insert_rows,
    padded,
    page_sql,
)
from openrouter_attribution.usage.stores.sqlite.schema import INBOX_INSERT as _INBOX_INSERT
from openrouter_attribution.usage.stores.sqlite.schema import INBOX_WAITING as _INBOX_WAITING
from openrouter_attribution.usage.stores.sqlite.schema import MIGRATIONS as _MIGRATIONS

if TYPE_CHECKING:
    from openrouter_attribution.usage.stores.sqlite.backend import SQLiteBackend

__all__ = ["FOLD_AT", "SCHEMA_VERSION", "SQLiteUsageStore", "register_functions"]

# floor(time) keeps SQL and Python (storage.group_key) on the same UTC day near midnight.
_DAY = "strftime('%Y-%m-%d', CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)), 'unixepoch')"
_KEY_SQL: dict[str, str] = {
    "user": "user",
    "model": "COALESCE(model_used, model_requested)",
    "day": _DAY,
    "session": "session_id",
    "provider": "provider",
    "kind": "kind",
}

_PAGE = 1000
# The rollup rows whose records were all deleted (the triggers leave them at zero).
_EMPTIED = "DELETE FROM usage_daily WHERE requests = 0"


class _DecimalSum:
    """SQLite aggregate: exact sum of decimal TEXT values, NULLs skipped, NULL if none."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def step(self, value: str | None) -> None:
        # The texts are kept and added up once at the end: a step (a call from SQLite into Python for
        # every row it adds up) then does the least it can.
        if value is not None:
            self.values.append(value)

    def finalize(self) -> str | None:
        return None if not self.values else format_cost(sum_costs(map(Decimal, self.values)))


def _decimal_add(a: str | None, b: str | None) -> str:
    """SQLite function ``usage_decimal_add``: the exact sum of two decimal TEXT values (NULL counts as 0)."""
    return format_cost(add_costs(Decimal(a or 0), None if b is None else Decimal(b)) or Decimal(0))


def _decimal_sub(a: str | None, b: str | None) -> str:
    """SQLite function ``usage_decimal_sub``: ``a - b`` exactly (NULL counts as 0; copy_negate never rounds)."""
    return format_cost(add_costs(Decimal(a or 0), None if b is None else Decimal(b).copy_negate()) or Decimal(0))


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the ledger's SQL functions on ``conn``: ``usage_decimal_sum`` (an exact sum of decimal TEXT)
    for reads, and ``usage_decimal_add`` / ``usage_decimal_sub``, which the daily rollup's triggers call:
    another program that inserts, deletes or updates ``usage_records`` needs them (see ``daily.py``)."""
    # typeshed types aggregate values as int; ours receives the TEXT cost column.
    conn.create_aggregate("usage_decimal_sum", 1, _DecimalSum)  # type: ignore[arg-type]
    conn.create_function("usage_decimal_add", 2, _decimal_add, deterministic=True)
    conn.create_function("usage_decimal_sub", 2, _decimal_sub, deterministic=True)


_NULL = float("nan")
"""What ``None`` is bound as: SQLite stores NULL for a NaN (it keeps no NaN), and Python 3.11's sqlite3
binds a float directly, where a ``None`` or a bool first goes through its adaptation protocol (a failed
attribute lookup that formats an error message: about 0.4 µs a value, the costliest part of a row)."""
_COST, _STREAMED, _METADATA = (FIELDS.index(field) for field in ("cost", "streamed", "metadata"))
_WIDTH = len(FIELDS)


def _bound_values(records: Sequence[UsageRecord]) -> list[object]:
    """The values an INSERT of ``records`` binds: the records laid end to end (a record is a tuple of
    its fields: the inserts list the columns in field order), ``None`` as NaN, cost as exact text,
    ``streamed`` as 0 or 1 (stored as a None, the text and an int would be) and metadata as JSON text.
    One pass over the values in a comprehension, then one over each converted column."""
    values: list[object] = [_NULL if value is None else value for value in chain.from_iterable(records)]
    costs = values[_COST::_WIDTH]
    values[_COST::_WIDTH] = [cost if cost is _NULL else format_cost(cost) for cost in costs]  # type: ignore[arg-type]
    values[_STREAMED::_WIDTH] = map(int, values[_STREAMED::_WIDTH])  # type: ignore[arg-type]
    values[_METADATA::_WIDTH] = [m if m is _NULL else metadata_json(m) for m in values[_METADATA::_WIDTH]]  # type: ignore[arg-type]
    return values


def _insert_statement(values: list[object], at: int, rows: int, width: int) -> tuple[str, list[object]]:
    """The INSERT of rows ``at`` to ``at + rows`` of ``values``, padded to a power of two rows with copies
    of its last row, which the conflict clause drops (no trigger fires for them): a connection compiles
    one statement per power of two, and a batch takes one statement per :data:`ROWS_AT_ONCE` rows (each
    statement costs the writer a round of giving up and taking back the GIL)."""
    size, chunk = padded(values[at * width : (at + rows) * width], rows, width)
    return insert_rows(size), chunk


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)  # None for an error not raised by SQLite itself
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)
    return "locked" in str(err) or "busy" in str(err)


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


class SQLiteUsageStore(BackendOwner["SQLiteBackend"]):
    """Usage records in one SQLite file (see the module docstring for concurrency and cost).

    Opening a file written by an earlier release migrates its schema (``PRAGMA user_version``) to
    :data:`SCHEMA_VERSION` in one transaction; a file from a newer release is refused.

    Args:
        path: The database file (its folder must exist; the file is created), or ``":memory:"``.
        busy_timeout: Seconds a write waits for another process's lock before failing.
        create: When false, open an existing ledger only and raise :class:`UsageStoreError`
            if there is none (what read-only tools such as the CLI want).
        read_only: Open the file read-only (SQLite's ``mode=ro``): nothing is migrated, folded or
            written, and a ledger whose schema is not this release's is refused (what the dashboard wants).

    Raises:
        UsageStoreError: ``create=False`` and no ledger exists at ``path``, or the schema is newer.
        sqlite3.Error, OSError: the file cannot be created or opened.

    Example:
        >>> store = SQLiteUsageStore(":memory:")
        >>> store.write_many([UsageRecord(user="app_1", cost=Decimal("0.1")), UsageRecord(user="app_1")])
        >>> store.totals("user")[0].cost
        Decimal('0.1')
        >>> store.close()
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0, create: bool = True, read_only: bool = False
    ) -> None:
        self.path = os.fspath(path)
        """The database file."""
        self.busy_timeout = busy_timeout
        """Seconds a write waits for another process's lock."""
        self._busy_ms = self._busy_now = int(busy_timeout * 1000)
        self.migrated_from: int | None = None
        """The schema version the file had when opened, if it was migrated (``0``: a new file)."""
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._memory = self.path == ":memory:"
        self._inboxed = 0
        """Records this store appended to ``usage_inbox`` since it last folded it."""
        self._create = create and not read_only
        self.read_only = read_only
        """Whether the file is open read-only."""
        conn = self._open()
        try:
            self._configure_connection(conn)
            if not self._create:
                self._check_schema(conn)
            if read_only:
                self._check_version(conn)
            else:
                self._migrate(conn)
        except sqlite3.DatabaseError as err:
            conn.close()
            if not create:
                raise UsageStoreError(f"{self.path} is not a usage ledger: {err}") from err
            raise
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        # WAL lets a second connection read while the first writes: reports never hold up commits.
        self._reader: sqlite3.Connection | None = None
        if not self._memory and not read_only and conn.execute(_INBOX_WAITING).fetchone()[0]:
            # What processes that ended left in the inbox moves to usage_records when a ledger opens, if
            # the write lock is free now (opening never waits for it; the next write transaction folds).
            self._wait_busy(conn, 0)
            with contextlib.suppress(sqlite3.OperationalError), self._lock, self._transaction(conn):
                self._fold(conn)

    def _open(self) -> sqlite3.Connection:
        if self._create or self._memory:
            target, uri = (self.path if self._memory else os.path.expanduser(self.path)), False
        else:
            quoted = urllib.parse.quote(os.path.abspath(os.path.expanduser(self.path)))
            target, uri = f"file:{quoted}?mode={'ro' if self.read_only else 'rw'}", True
        try:
            conn = sqlite3.connect(
                target, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False, uri=uri
            )
        except sqlite3.OperationalError as err:
            if not self._create:
                raise UsageStoreError(f"no ledger at {self.path}") from err
            raise
        register_functions(conn)
        return conn

    def _configure_connection(self, conn: sqlite3.Connection) -> None:
        """Per-connection settings; subclasses may add pragmas (tests use ``max_page_count``)."""
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        # WAL + NORMAL: a commit survives the process being killed; an OS crash or power loss may lose
        # the last commits (https://www.sqlite.org/pragma.html#pragma_synchronous).
        conn.execute("PRAGMA synchronous = NORMAL")
        # A multi-row INSERT keeps a statement journal (the pages it changed, to undo it alone if it fails);
        # past 64 KiB SQLite spills that journal to a new temporary file, created and deleted at every
        # commit of a batch. In memory it costs the writer a copy of those pages instead.
        conn.execute("PRAGMA temp_store = MEMORY")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs an exclusive lock and SQLite reports SQLITE_BUSY for it without calling
        # the busy handler when other processes open the same new file at once: retry until busy_timeout.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._migrate_once(conn)
                return
            except sqlite3.OperationalError as err:
                if not _is_busy(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def _migrate_once(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return  # the common case: no write lock taken
        # WAL is persistent in the file; a filesystem without WAL support keeps its journal mode.
        if not self._memory and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        with self._transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UsageStoreError(
                    f"{self.path} has ledger schema {version}; this library knows {SCHEMA_VERSION}: upgrade "
                    "openrouter-attribution"
                )
            for step in _MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if version < SCHEMA_VERSION:
            self.migrated_from = version

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise UsageStoreError(
                f"{self.path} has ledger schema {version}; this library reads {SCHEMA_VERSION} read-only: "
                + ("run `openrouter-attribution migrate` first" if version < SCHEMA_VERSION else "upgrade it")
            )

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        with self._lock:
            return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

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
        """The write connection (caller holds ``_lock``), waiting the full ``busy_timeout`` for other
        processes' locks again if :meth:`write_within` shortened it."""
        conn = self._conn
        if conn is None:
            raise UsageStoreError(f"the ledger store {self.path} is closed")
        if self._busy_now != self._busy_ms:
            self._wait_busy(conn, self._busy_ms)
        return conn

    @staticmethod
    @contextlib.contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock is taken first, so a check-then-write
        inside it is atomic across processes); rolled back on any error."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                # The original error propagates; a failed rollback adds nothing to it.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction on this store's connection (for features built on the store);
        it sees every committed record (the inbox is folded first)."""
        with self._lock:
            with self._transaction(self._connection()) as conn:
                folded = not self._memory and conn.execute(_INBOX_WAITING).fetchone()[0]
                if folded:
                    self._fold(conn)
                yield conn
            if folded:
                self._inboxed = 0

    def write_many(self, records: Sequence[UsageRecord]) -> None:
        """Insert records in one transaction; ids already stored are ignored.

        Raises:
            sqlite3.Error: locked beyond ``busy_timeout``, disk full, read-only file, ...
        """
        if not records:
            return
        with self._lock:
            self._insert(self._connection(), records)

    def write_within(self, records: Sequence[UsageRecord], timeout: float) -> bool:
        """Insert records as :meth:`write_many` does, waiting at most about ``timeout`` seconds for a
        lock held by another thread or process (instead of ``busy_timeout``).

        Returns:
            True once committed, False when the lock was not free in time (nothing was written).

        Raises:
            sqlite3.Error: disk full, read-only file, ...
        """
        if not records:
            return True
        if not self._lock.acquire(True, max(timeout, 0.0)):
            return False
        try:
            conn = self._conn
            if conn is None:
                raise UsageStoreError(f"the ledger store {self.path} is closed")
            # Steps of 10 ms: a caller that did not wait first asks for the same value every time, so the
            # busy timeout is set once, not before every insert.
            ms = min(self._busy_ms, max(0, int(timeout * 1000) // 10 * 10))
            if ms != self._busy_now:
                self._wait_busy(conn, ms)
            try:
                self._insert(conn, records)
            except sqlite3.OperationalError as err:
                if _is_busy(err):
                    return False
                raise
            return True
        finally:
            self._lock.release()

    def _wait_busy(self, conn: sqlite3.Connection, ms: int) -> None:
        """Set how long the write connection waits for another connection's lock (caller holds ``_lock``)."""
        if ms != self._busy_now:
            conn.execute(f"PRAGMA busy_timeout = {ms}")
            self._busy_now = ms

    def _insert(self, conn: sqlite3.Connection, records: Sequence[UsageRecord]) -> None:
        """Commit ``records``: commits of fewer than :data:`INBOX_MAX` records append to ``usage_inbox``;
        the commit that brings this store's appends to :data:`FOLD_AT`, and any larger one (the writer
        thread's commits of a journal or a buffer, which gather many calls), insert directly, after
        folding the inbox when this store appended to it (so that its first copy of a record stays the
        one kept). The inbox rows of other processes are theirs to fold (see the module docstring)."""
        count, width = len(records), _WIDTH
        values = _bound_values(records)
        if count >= INBOX_MAX or self._memory or self._inboxed + count >= FOLD_AT:
            with self._transaction(conn):
                if self._inboxed:
                    self._fold(conn)  # what this store appended (other processes fold their own)
                for at in range(0, count, ROWS_AT_ONCE):
                    conn.execute(*_insert_statement(values, at, min(ROWS_AT_ONCE, count - at), width))
            self._inboxed = 0
        elif count == 1:  # one statement is its own transaction: no BEGIN / COMMIT round
            conn.execute(_INBOX_INSERT, values)
            self._inboxed += 1
        else:
            with self._transaction(conn):
                conn.executemany(_INBOX_INSERT, [values[at : at + width] for at in range(0, len(values), width)])
            self._inboxed += count

    def _fold(self, conn: sqlite3.Connection) -> None:
        """Move the records in ``usage_inbox`` (any process's) to ``usage_records``, keeping one row per
        record id; the caller holds ``_lock`` and a write transaction, and resets ``_inboxed`` once it
        has committed.

        Why an inbox: a commit writes a page of every b-tree it changes, and ``usage_records`` has seven
        (the table, its key and the indexes for queries by time, user, model, session and the
        reconciliation backlog). A record appended to the inbox changes one; folding moves many records
        at once, so the index pages they share are written once. Reads query the view ``usage_all``
        (both tables, one row per record id) and need no write lock; every write transaction of this
        store folds first, so updates and deletes find every record in ``usage_records``.
        """
        for statement in _FOLD:
            conn.execute(statement)

    def prune(self, before: float, *, dry_run: bool = False) -> int:
        """Delete the records older than ``before`` (epoch seconds); returns how many (would) go."""
        if dry_run:
            return int(self._fetch("SELECT COUNT(*) FROM usage_all WHERE time < ?", [before])[0][0])
        with self.transaction() as conn:
            deleted = conn.execute("DELETE FROM usage_records WHERE time < ?", (before,)).rowcount
            conn.execute(_EMPTIED)
            return deleted

    def _read_connection(self) -> sqlite3.Connection:
        conn = self._conn  # only its closed state matters here: file ledgers read through their own
        if conn is None:
            raise UsageStoreError(f"the ledger store {self.path} is closed")
        if self._memory:
            return conn
        if self._reader is None:
            reader = self._open()
            self._configure_connection(reader)
            self._reader = reader
        return self._reader

    def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        lock = self._lock if self._memory else self._read_lock
        with lock:
            try:
                return self._read_connection().execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise UsageStoreError(f"cannot read the ledger {self.path}: {err}") from err

    def iter_records(
        self,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        where: Mapping[str, str] | None = None,
    ) -> Iterator[UsageRecord]:
        """Yield matching records ordered by time, then record id (``where`` as ``queries.totals`` reads it).

        Reads in pages without holding a transaction or the lock between pages,
        so a slow consumer never blocks writers.
        """
        condition, params = _where(since, until, user, where)
        first = page_sql(", ".join(COLUMNS), condition)
        after_sql = page_sql(", ".join(COLUMNS), " AND ".join(filter(None, (condition, "(time, record_id) > (?, ?)"))))
        after: tuple[object, object] | None = None
        while True:
            page_params = params if after is None else [*params, *after]
            rows = self._fetch(first if after is None else after_sql, [*page_params, *page_params, _PAGE])
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
        """Aggregate in SQL (exact cost sums; ``cost`` is the billed cost where a record is reconciled); unsorted."""
        check_by(by)
        key, params = ("NULL", []) if by is None else _column(by)
        condition, where_params = _where(since, until, user, check_where(where))
        params += where_params
        clause = f" WHERE {condition}" if condition else ""
        sql = (
            f"SELECT {key} AS k, COUNT(*), COALESCE(SUM(outcome NOT IN ('ok', 'abandoned')), 0), "
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
            "usage_decimal_sum(COALESCE(billed_cost, cost)), COUNT(*) - COUNT(COALESCE(billed_cost, cost)), "
            "usage_decimal_sum(cost), COUNT(billed_cost), COALESCE(SUM(user_mismatch), 0) "
            f"FROM usage_all{clause} GROUP BY k"
        )
        return [totals_row(row) for row in self._fetch(sql, params)]

    def breakdown(
        self, by: Sequence[TotalsBy | str], since: float | None, until: float | None, where: Filters
    ) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
        """Totals per combination of the ``by`` keys, in one pass (see :mod:`.reads`); unsorted."""
        return reads.breakdown(self._fetch, by, since, until, where)

    def daily(
        self, by: Sequence[TotalsBy | str], first: int | None, end: int | None, where: Filters
    ) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
        """Totals per combination of the ``by`` keys over whole UTC days, from the daily rollup; unsorted."""
        return reads.daily(self._fetch, by, first, end, where)

    def recent(self, limit: int, since: float | None, until: float | None, where: Filters) -> list[UsageRecord]:
        """The ``limit`` latest matching records, newest first."""
        return reads.recent(self._fetch, limit, since, until, where)

    def _new_backend(self) -> SQLiteBackend:
        from openrouter_attribution.usage.stores.sqlite.backend import SQLiteBackend

        return SQLiteBackend(self)

    def close(self) -> None:
        """Close the connections (folding what this store left in the inbox first); idempotent."""
        with self._lock, self._read_lock:
            if self._inboxed and self._conn is not None:
                writer = self._connection()  # the full busy_timeout again, if write_within shortened it
                with contextlib.suppress(sqlite3.Error), self._transaction(writer):
                    self._fold(writer)
            for conn in (self._reader, self._conn):
                if conn is not None:
                    conn.close()
            self._conn = self._reader = None

    def __repr__(self) -> str:
        return f"SQLiteUsageStore({self.path!r})"
