"""The store contract, on every backend: records, queries and totals match the reference semantics."""

from __future__ import annotations

import contextlib
import sqlite3
from decimal import Decimal

import pytest

from openrouter_attribution.usage import UsageLedger, UsageRecord, UsageStoreError, open_store
from openrouter_attribution.usage.stores.postgres.store import SCHEMA_VERSION as POSTGRES_SCHEMA
from openrouter_attribution.usage.stores.protocol import aggregate_records
from openrouter_attribution.usage.stores.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA

MIDNIGHT = 1767225600.0  # 2026-01-01T00:00:00Z

RECORDS = [
    UsageRecord(time=MIDNIGHT - 0.000001, user="a", model_used="m/one", cost=Decimal("0.1"), prompt_tokens=3,
                session_id="s1", provider="p1", record_id="r1"),
    UsageRecord(time=MIDNIGHT, user="a", model_requested="m/two", outcome="RateLimitError", record_id="r2"),
    UsageRecord(time=MIDNIGHT + 86399.999999, user="b", model_used="m/one", cost=Decimal("1.5E-7"),
                completion_tokens=4, cached_tokens=2, reasoning_tokens=1, kind="embeddings", record_id="r3"),
    UsageRecord(time=MIDNIGHT + 86400, user=None, cost=Decimal("0.000000000000000001"), outcome="abandoned",
                streamed=True, ttft_s=0.01, latency_s=0.5, framework="langchain", generation_id="gen-9",
                record_id="r4"),
    UsageRecord(time=MIDNIGHT - 3600, user="b", cost=Decimal("12345.678901234567890123"), record_id="r0"),
]  # fmt: skip


@pytest.fixture
def store(backend):
    store = open_store(backend.location)
    store.write_many(RECORDS)
    yield store
    store.close()


def test_records_read_back_exactly_in_time_order(store):
    assert list(store.iter_records()) == sorted(RECORDS, key=lambda r: r.time)


def test_filters_match_the_reference(store):
    got = [r.record_id for r in store.iter_records(MIDNIGHT, MIDNIGHT + 86400, "a")]
    assert got == ["r2"]
    assert [r.record_id for r in store.iter_records(until=MIDNIGHT)] == ["r0", "r1"]


@pytest.mark.parametrize("by", [None, "user", "model", "day", "session", "provider", "kind"])
def test_totals_match_aggregate_records(store, by):
    assert sorted(store.totals(by), key=repr) == sorted(aggregate_records(RECORDS, by), key=repr)


def test_utc_days_near_midnight(store):
    days = {t.key: t.requests for t in store.totals("day")}
    assert days == {"2025-12-31": 2, "2026-01-01": 2, "2026-01-02": 1}


def test_writing_a_record_again_keeps_one_row(store, backend):
    store.write_many(RECORDS[:2])
    store.write_many([UsageRecord(user="x", generation_id="gen-9")])  # the same generation, another recorder
    assert sorted(backend.record_ids()) == ["gen-9", "r0", "r1", "r2", "r3", "r4"]
    assert len(list(store.iter_records())) == 6


def test_exact_costs(store):
    (overall,) = store.totals(None)
    assert overall.cost == Decimal("12345.778901384567890123") + Decimal("0.000000000000000001")


def test_prune(store, backend):
    assert store.prune(MIDNIGHT, dry_run=True) == 2
    assert len(backend.record_ids()) == 5
    assert store.prune(MIDNIGHT) == 2
    assert sorted(backend.record_ids()) == ["r2", "r3", "r4"]


def test_a_ledger_on_each_backend_gives_the_same_report(backend):
    with UsageLedger(backend.location) as ledger:
        ledger.record_many(RECORDS)
        assert [(t.key, t.requests, t.cost) for t in ledger.totals("user")] == [
            (t.key, t.requests, t.cost) for t in aggregate_records(RECORDS, "user")
        ]
        assert ledger.written == 5


def _v1_sqlite(path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(V1_SQLITE)
        conn.execute("INSERT INTO usage_records (record_id, time, user, cost, streamed, outcome) "
                     "VALUES ('old', 1.0, 'a', '0.5', 0, 'ok')")  # fmt: skip
        conn.execute("PRAGMA user_version = 1")
        conn.commit()


def _v1_postgres(dsn) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(V1_POSTGRES)
        conn.execute(
            "CREATE TABLE usage_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)"
        )
        conn.execute("INSERT INTO usage_schema VALUES (true, 1)")
        conn.execute("""INSERT INTO usage_records (record_id, time, "user", cost, streamed, outcome) """
                     "VALUES ('old', 1.0, 'a', 0.5, false, 'ok')")  # fmt: skip


def test_a_v1_ledger_opens_and_is_migrated(backend):
    if backend.name == "sqlite":
        _v1_sqlite(backend.location)
    else:
        _v1_postgres(backend.location)
    store = open_store(backend.location)
    try:
        store.write_many([UsageRecord(user="b", kind="embeddings", record_id="new")])
        assert store.migrated_from == 1  # type: ignore[attr-defined]
        assert store.schema_version == (SQLITE_SCHEMA if backend.name == "sqlite" else POSTGRES_SCHEMA)  # type: ignore[attr-defined]
        assert [(r.record_id, r.kind, r.cost) for r in store.iter_records()] == [
            ("old", "chat", Decimal("0.5")), ("new", "embeddings", None)]  # fmt: skip
    finally:
        store.close()
    again = open_store(backend.location)
    assert again.migrated_from is None  # type: ignore[attr-defined]
    again.close()


def test_a_newer_schema_is_refused(backend):
    store = open_store(backend.location)
    store.write_many([UsageRecord()])
    store.close()
    if backend.name == "sqlite":
        with contextlib.closing(sqlite3.connect(backend.location)) as conn:
            conn.execute("PRAGMA user_version = 99")
    else:
        backend.rows("UPDATE usage_schema SET version = 99 RETURNING version")
    newer = None if backend.name == "sqlite" else open_store(backend.location)  # PostgreSQL connects lazily
    with pytest.raises(UsageStoreError, match="schema 99"):
        (newer or open_store(backend.location)).write_many([UsageRecord()])


V1_SQLITE = """
CREATE TABLE IF NOT EXISTS usage_records (
    record_id TEXT PRIMARY KEY NOT NULL, time REAL NOT NULL, user TEXT, session_id TEXT,
    model_requested TEXT, model_used TEXT, provider TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
    cached_tokens INTEGER, reasoning_tokens INTEGER, cost TEXT, latency_s REAL, ttft_s REAL,
    generation_id TEXT, streamed INTEGER NOT NULL, outcome TEXT NOT NULL, framework TEXT
);
CREATE INDEX IF NOT EXISTS usage_records_time ON usage_records (time);
CREATE INDEX IF NOT EXISTS usage_records_user_time ON usage_records (user, time);
"""

V1_POSTGRES = """
CREATE TABLE usage_records (
    record_id text COLLATE "C" PRIMARY KEY, time double precision NOT NULL, "user" text, session_id text,
    model_requested text, model_used text, provider text, prompt_tokens bigint, completion_tokens bigint,
    cached_tokens bigint, reasoning_tokens bigint, cost numeric, latency_s double precision,
    ttft_s double precision, generation_id text, streamed boolean NOT NULL, outcome text NOT NULL, framework text
)
"""
