"""The SQLite ledger's schema: its migrations and the statements that write and fold records (no I/O).

:class:`~openrouter_attribution.usage.stores.sqlite.store.SQLiteUsageStore` runs them; see its module for how the
store uses the inbox of small commits.
"""

from __future__ import annotations

import functools
from typing import TypeVar

from openrouter_attribution.usage.records import FIELDS
from openrouter_attribution.usage.stores.rows import COLUMNS
from openrouter_attribution.usage.stores.sqlite.daily import DAILY_MIGRATION

__all__ = [
    "FOLD", "FOLD_AT", "INBOX_INSERT", "INBOX_MAX", "INBOX_ONCE", "INBOX_WAITING", "MIGRATIONS",
    "ROWS_AT_ONCE", "SCHEMA_VERSION", "insert_rows", "padded", "page_sql",
]  # fmt: skip

T = TypeVar("T")

# The inbox rows (alias i) that are neither in usage_records nor an earlier copy of an inbox row.
INBOX_ONCE = ("i.rowid IN (SELECT MIN(rowid) FROM usage_inbox GROUP BY record_id) "
              "AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.record_id = i.record_id)")  # fmt: skip


def page_sql(columns: str, where: str, inbox_where: str | None = None) -> str:
    """A keyset page of every stored record in ``(time, record_id)`` order: both tables as one compound
    SELECT, which SQLite merges arm by arm, so the LIMIT stops the index scan of ``usage_records`` after
    a page (through the view ``usage_all`` it would sort every matching row first).

    ``where`` is a condition on ``usage_records`` (``""`` for none), ``inbox_where`` the same one for
    the inbox (default: ``where``; the inbox has no reconciliation columns). Bind the parameters of
    ``where``, then those of ``inbox_where``, then the page size.
    """
    inbox = where if inbox_where is None else inbox_where
    records = f" WHERE {where}" if where else ""
    inbox = f" WHERE {inbox} AND {INBOX_ONCE}" if inbox else f" WHERE {INBOX_ONCE}"
    return (f"SELECT {columns} FROM usage_records{records} UNION ALL SELECT {columns} FROM usage_inbox i{inbox} "
            "ORDER BY time, record_id LIMIT ?")  # fmt: skip


# The columns of usage_records up to schema 5 (schema 6 adds metadata): the migrations that built the
# inbox and the view name the columns as they were then.
_V5_COLUMNS = tuple(column for column in COLUMNS if column != "metadata")

# The columns reconciliation fills (schema 3), after COLUMNS in usage_records.
BILLED: tuple[str, ...] = (
    "billed_cost", "cache_discount", "native_prompt_tokens", "native_completion_tokens", "native_reasoning_tokens",
    "native_cached_tokens", "cancelled", "billed_user", "user_mismatch", "reconcile_status", "reconciled_at",
)  # fmt: skip

# Budget alerts (usage/budgets/alerts.py): one row per alert fired; its primary key is what makes an alert
# fire once in the fleet (each process claims it with INSERT ... ON CONFLICT DO NOTHING). ``budget_key`` is
# the budget's store key (budgets.keys.store_key). The spend triggers are dropped with the spend rollup:
# the first budgeted call installs them again, with the rollup per metadata value, and refills it.
BUDGET_ALERTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS budget_alerts (
        scope TEXT NOT NULL,
        budget_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        fraction REAL NOT NULL,
        window_start REAL NOT NULL,
        spent TEXT NOT NULL,
        limit_value TEXT NOT NULL,
        period TEXT NOT NULL,
        resets_at REAL,
        fired_at REAL NOT NULL,
        PRIMARY KEY (scope, budget_key, kind, fraction, window_start)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS budget_alerts_fired ON budget_alerts (fired_at)",
    "DROP TRIGGER IF EXISTS budget_spend_insert",
    "DROP TRIGGER IF EXISTS budget_spend_delete",
    "DROP TRIGGER IF EXISTS budget_spend_update",
    "DELETE FROM budget_spend",
)


def _view(columns: tuple[str, ...]) -> str:
    # Every stored record once: what reads (and other tools) query. A migration adding a column to
    # usage_records drops and recreates this view.
    return (
        f"CREATE VIEW IF NOT EXISTS usage_all AS SELECT {', '.join(columns + BILLED)} FROM usage_records UNION ALL "
        f"SELECT {', '.join(columns)}, {', '.join('NULL' for _ in BILLED)} FROM usage_inbox i WHERE {INBOX_ONCE}"
    )


# Each entry moves the schema from version i to i + 1 (index 0 creates version 1). Version 1 is the
# schema of the first release; a file with a lower user_version is brought up to date when opened.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS usage_records (
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
        )""",
        "CREATE INDEX IF NOT EXISTS usage_records_time ON usage_records (time)",
        "CREATE INDEX IF NOT EXISTS usage_records_user_time ON usage_records (user, time)",
    ),
    (
        "ALTER TABLE usage_records ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat'",
        "CREATE INDEX IF NOT EXISTS usage_records_model ON usage_records (COALESCE(model_used, model_requested))",
        "CREATE INDEX IF NOT EXISTS usage_records_session_time ON usage_records (session_id, time)",
    ),
    (
        # Reconciliation with GET /generation (usage/reconcile.py): what OpenRouter billed per record.
        "ALTER TABLE usage_records ADD COLUMN billed_cost TEXT",
        "ALTER TABLE usage_records ADD COLUMN cache_discount TEXT",
        "ALTER TABLE usage_records ADD COLUMN native_prompt_tokens INTEGER",
        "ALTER TABLE usage_records ADD COLUMN native_completion_tokens INTEGER",
        "ALTER TABLE usage_records ADD COLUMN native_reasoning_tokens INTEGER",
        "ALTER TABLE usage_records ADD COLUMN native_cached_tokens INTEGER",
        "ALTER TABLE usage_records ADD COLUMN cancelled INTEGER",
        "ALTER TABLE usage_records ADD COLUMN billed_user TEXT",
        "ALTER TABLE usage_records ADD COLUMN user_mismatch INTEGER",
        "ALTER TABLE usage_records ADD COLUMN reconcile_status TEXT",
        "ALTER TABLE usage_records ADD COLUMN reconciled_at REAL",
        "CREATE INDEX IF NOT EXISTS usage_records_unreconciled ON usage_records (time, record_id) "
        "WHERE generation_id IS NOT NULL AND reconcile_status IS NULL",
        # Budgets (usage/budgets/budget.py): reservations of calls in flight; user_key '' is the unattributed budget.
        # One b-tree clustered by user (WITHOUT ROWID): a reserve step writes one page, reads one range.
        """CREATE TABLE IF NOT EXISTS budget_reservations (
            user_key TEXT NOT NULL,
            id TEXT NOT NULL,
            amount TEXT NOT NULL,
            slots INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            record_id TEXT,
            PRIMARY KEY (user_key, id)
        ) WITHOUT ROWID""",
        # Spend and requests per user and UTC day (pico-dollars), kept by triggers once a budget is used.
        """CREATE TABLE IF NOT EXISTS budget_spend (
            user_key TEXT NOT NULL,
            day INTEGER NOT NULL,
            pico INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            PRIMARY KEY (user_key, day)
        ) WITHOUT ROWID""",
    ),
    (
        # Small commits (a durable call's record) append here: a table without indexes, so a commit
        # writes one page instead of one per index of usage_records; folded into usage_records (see
        # SQLiteUsageStore._fold). Its columns are COLUMNS: a migration adding one adds it here too.
        "CREATE TABLE IF NOT EXISTS usage_inbox AS SELECT " + ", ".join(_V5_COLUMNS) + " FROM usage_records WHERE 0",
        _view(_V5_COLUMNS),
    ),
    (
        # The indexes on the model and on (session_id, time) served no query: totals by model or session
        # read every record of their time range (usage_records_time, or the whole table) and group them
        # in a temporary b-tree, so each only cost every insert one more b-tree to write.
        "DROP INDEX IF EXISTS usage_records_model",
        "DROP INDEX IF EXISTS usage_records_session_time",
    ),
    (
        # The attribution's metadata as JSON text: totals and budgets by metadata.<key> (json_extract).
        "ALTER TABLE usage_records ADD COLUMN metadata TEXT",
        "ALTER TABLE usage_inbox ADD COLUMN metadata TEXT",
        "DROP VIEW IF EXISTS usage_all",
        _view(COLUMNS),
    ),
    BUDGET_ALERTS,
    # The daily rollup the dashboard's reads add up (daily.py), filled from the records already stored.
    DAILY_MIGRATION,
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this release writes (``PRAGMA user_version``)."""

ROWS_AT_ONCE = 256
"""Rows one INSERT statement carries at most (20 columns each: well within SQLite's 32,766 parameters);
statements carry a power of two rows, so a connection compiles at most 9 of them."""


def padded(chunk: list[T], rows: int, width: int = 1) -> tuple[int, list[T]]:
    """``chunk`` (``rows`` rows of ``width`` values each, laid end to end) padded to a power of two rows
    with copies of its last row, and that number of rows: a statement taking many rows is then one of a
    few (one per power of two), each compiled once per connection. The statement must ignore the copies."""
    size = 1 << (rows - 1).bit_length()
    if size > rows:
        chunk += chunk[-width:] * (size - rows)
    return size, chunk


@functools.lru_cache(maxsize=16)
def insert_rows(n: int) -> str:
    """The INSERT of ``n`` records into ``usage_records`` (ids already stored are ignored): one
    statement and one step for many rows, instead of one per row (fewer statements cost the writer
    less, and it gives up and takes back the GIL once per statement)."""
    one = f"({', '.join('?' for _ in FIELDS)})"
    return (f"INSERT INTO usage_records ({', '.join(FIELDS)}) VALUES {', '.join([one] * n)} "
            "ON CONFLICT (record_id) DO NOTHING")  # fmt: skip


# Inserts name their columns in a record's field order: they bind a batch's records laid end to end.
INBOX_INSERT = f"INSERT INTO usage_inbox ({', '.join(FIELDS)}) VALUES ({', '.join('?' for _ in FIELDS)})"
# ORDER BY rowid: of two copies of one record the first written is kept, as direct inserts do ("WHERE
# true" is how SQLite tells an upsert's ON CONFLICT from a join constraint after a SELECT).
FOLD = (
    f"INSERT INTO usage_records ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM usage_inbox WHERE true "
    "ORDER BY rowid ON CONFLICT (record_id) DO NOTHING",
    "DELETE FROM usage_inbox",
)
INBOX_WAITING = "SELECT EXISTS (SELECT 1 FROM usage_inbox)"

FOLD_AT = 64
"""A process folds the inbox into ``usage_records`` once it has appended this many records to it."""
INBOX_MAX = 8
"""Commits of fewer records go to the inbox; larger ones gain nothing from it and insert directly."""
