"""SQLite schema 5: the indexes every query uses, none that only cost inserts, and batch inserts."""

from __future__ import annotations

import contextlib
import sqlite3
from decimal import Decimal

import pytest

from openrouter_attribution import UsageLedger, UserBudget
from openrouter_attribution.usage import UsageRecord
from openrouter_attribution.usage.stores.sqlite.schema import MIGRATIONS, page_sql
from openrouter_attribution.usage.stores.sqlite.store import _KEY_SQL, SCHEMA_VERSION, SQLiteUsageStore

INDEXES_5 = {"sqlite_autoindex_usage_records_1", "usage_records_time", "usage_records_user_time",
             "usage_records_unreconciled"}  # fmt: skip


def _indexes(path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage_records'")
        return {name for (name,) in rows}


def _plan(store: SQLiteUsageStore, sql: str, params: list[object]) -> str:
    conn = store._read_connection()
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_a_schema_4_ledger_loses_the_two_unused_indexes(tmp_path):
    path = tmp_path / "usage.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for step in MIGRATIONS[:4]:
            for statement in step:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 4")
        conn.execute("INSERT INTO usage_records (record_id, time, user, session_id, model_used, cost, streamed, "
                     "outcome) VALUES ('old', 1.0, 'a', 's', 'm', '0.5', 0, 'ok')")  # fmt: skip
        conn.commit()
    assert {"usage_records_model", "usage_records_session_time"} <= _indexes(path)
    store = SQLiteUsageStore(path)
    try:
        assert (store.migrated_from, store.schema_version, SCHEMA_VERSION) == (4, len(MIGRATIONS), len(MIGRATIONS))
        assert _indexes(path) == INDEXES_5
        assert [(t.key, t.cost) for t in store.totals("session")] == [("s", Decimal("0.5"))]
        assert [(t.key, t.cost) for t in store.totals("model")] == [("m", Decimal("0.5"))]
    finally:
        store.close()


@pytest.mark.parametrize("by", sorted(_KEY_SQL))
def test_totals_of_a_time_range_or_a_user_search_an_index(tmp_path, by):
    store = SQLiteUsageStore(tmp_path / "usage.db")
    try:
        key = _KEY_SQL[by]
        ranged = _plan(store, f"SELECT {key}, COUNT(*) FROM usage_all WHERE time >= ? AND time < ? GROUP BY 1", [0, 1])
        assert "SEARCH usage_records USING INDEX usage_records_time" in ranged
        for_user = _plan(store, f"SELECT {key}, COUNT(*) FROM usage_all WHERE user = ? GROUP BY 1", ["a"])
        assert "SEARCH usage_records USING INDEX usage_records_user_time" in for_user
    finally:
        store.close()


def test_a_page_of_records_reads_the_time_index(tmp_path):
    store = SQLiteUsageStore(tmp_path / "usage.db")
    try:
        plan = _plan(store, page_sql("record_id, time", "time >= ?"), [0, 0, 100])
        assert "SEARCH usage_records USING INDEX usage_records_time" in plan
    finally:
        store.close()


def test_a_batch_leaves_the_inbox_of_other_stores_alone(tmp_path):
    path = tmp_path / "usage.db"
    mine, other = SQLiteUsageStore(path), SQLiteUsageStore(path)
    try:
        other.write_many([UsageRecord(user="x", record_id="gen-2")])  # a small commit: into the inbox
        mine.write_many([UsageRecord(user="b") for _ in range(10)])  # a batch: straight into usage_records
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT record_id FROM usage_inbox").fetchall() == [("gen-2",)]
        assert sorted(r.user for r in mine.iter_records()) == ["b"] * 10 + ["x"]
    finally:
        mine.close()
        other.close()


def test_a_batch_folds_first_what_this_store_appended_so_its_first_copy_stays(tmp_path):
    path = tmp_path / "usage.db"
    store = SQLiteUsageStore(path)
    try:
        store.write_many([UsageRecord(user="first", record_id="gen-1")])
        store.write_many([UsageRecord(user="second", record_id="gen-1")] + [UsageRecord(user="b") for _ in range(9)])
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM usage_inbox").fetchone() == (0,)
            assert conn.execute("SELECT user FROM usage_records WHERE record_id = 'gen-1'").fetchall() == [("first",)]
    finally:
        store.close()


@pytest.mark.parametrize("count", [1, 3, 10])  # one inbox row, an inbox batch, a direct batch
def test_unknown_values_are_stored_as_null_and_streamed_as_an_integer(tmp_path, count):
    path = tmp_path / "usage.db"
    store = SQLiteUsageStore(path)
    try:
        records = [UsageRecord(record_id=f"r{i}", streamed=bool(i % 2), time=float(i)) for i in range(count)]
        store.write_many(records)
        assert list(store.iter_records()) == records
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT typeof(user), typeof(session_id), typeof(prompt_tokens), typeof(cost), "
                            "typeof(latency_s), typeof(ttft_s), typeof(streamed), streamed FROM usage_all "
                            "ORDER BY time").fetchall()  # fmt: skip
    assert rows == [("null",) * 6 + ("integer", i % 2) for i in range(count)]


@pytest.mark.parametrize("count", [8, 9, 255, 256, 257, 700])
def test_a_batch_stores_each_record_once_and_fires_insert_triggers_once(tmp_path, count):
    store = SQLiteUsageStore(tmp_path / "usage.db")
    try:
        conn = store._connection()
        conn.execute("CREATE TABLE inserted (record_id TEXT)")
        conn.execute("CREATE TRIGGER count_inserts AFTER INSERT ON usage_records "
                     "BEGIN INSERT INTO inserted VALUES (new.record_id); END")  # fmt: skip
        records = [UsageRecord(record_id=f"r{i:04d}", user=f"u{i}", time=float(i)) for i in range(count)]
        store.write_many(records)
        assert [r.record_id for r in store.iter_records()] == [r.record_id for r in records]
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT record_id) FROM inserted").fetchone() == (count, count)
    finally:
        store.close()


def test_statement_journals_stay_in_memory(tmp_path):
    # A batch's multi-row INSERT keeps a statement journal; on disk it is a temporary file made and
    # deleted at every commit, which cost the writer thread more than a tenth of the commit.
    store = SQLiteUsageStore(tmp_path / "usage.db")
    try:
        store.write_many([UsageRecord(user="a") for _ in range(300)])
        assert store._connection().execute("PRAGMA temp_store").fetchone() == (2,)  # MEMORY
        assert store._read_connection().execute("PRAGMA temp_store").fetchone() == (2,)
    finally:
        store.close()


def test_a_schema_6_ledger_rebuilds_its_budget_spend_with_the_spend_per_metadata_value(tmp_path):
    path = tmp_path / "usage.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for step in MIGRATIONS[:6]:
            for statement in step:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 6")
        conn.execute("CREATE TRIGGER budget_spend_insert AFTER INSERT ON usage_records BEGIN SELECT 1; END")  # old
        conn.execute("INSERT INTO budget_spend VALUES ('a', 0, 7, 7)")  # the old rollup: rebuilt, not trusted
        conn.execute("INSERT INTO usage_records (record_id, time, user, cost, streamed, outcome, metadata) VALUES "
                     "('old', 1.0, 'a', '0.5', 0, 'ok', '{\"tenant\": \"acme\"}')")  # fmt: skip
        conn.commit()
    with UsageLedger(path) as ledger:
        tenant = ledger.budget_status("acme", UserBudget(scope="metadata.tenant", period="total"))
        user = ledger.budget_status("a", UserBudget(period="total"))
    assert (tenant.usage.requests, tenant.usage.spent) == (1, Decimal("0.5"))
    assert (user.usage.requests, user.usage.spent) == (1, Decimal("0.5"))
