"""Tenant dimensions on every backend: records keep their metadata, totals group and filter by any key,
and SQL agrees with the reference aggregation in Python (``aggregate_records``)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from decimal import Decimal

import pytest

from openrouter_attribution import cli
from openrouter_attribution.usage import UsageLedger, UsageQueryError, UsageRecord, queries
from openrouter_attribution.usage.stores.protocol import MemoryUsageStore, aggregate_records, matches
from openrouter_attribution.usage.stores.sqlite.store import SCHEMA_VERSION, SQLiteUsageStore

T0 = 1767225600.0  # 2026-01-01 00:00 UTC
# (user, metadata, kind, cost): three tenants, a user without a tenant, a record without metadata.
CALLS = [
    ("u1", {"tenant": "acme", "plan": "pro"}, "chat", "0.0001"),
    ("u1", {"tenant": "acme", "plan": "pro"}, "embeddings", "0.00002"),
    ("u2", {"tenant": "acme"}, "chat", "0.0003"),
    ("u3", {"tenant": "globex"}, "chat", "0.005"),
    ("u3", {"tenant": "globex"}, "rerank", None),
    ("u4", {"plan": "free"}, "chat", "0.0000007"),
    ("u5", None, "chat", "0.01"),
    ("u6", {"tenant": "<script>alert(1)</script>", "note": 'é ünïcode "quoted"'}, "chat", "0.0004"),
]


def _records() -> list[UsageRecord]:
    return [
        UsageRecord(time=T0 + i, user=user, metadata=meta, kind=kind, cost=cost, model_used="openai/gpt-4o-mini")
        for i, (user, meta, kind, cost) in enumerate(CALLS)
    ]


@pytest.fixture
def ledger(backend):
    with UsageLedger(backend.location) as ledger:
        ledger.record_many(_records())
        ledger.flush()
        yield ledger


def test_records_read_back_with_their_metadata(ledger):
    assert [(r.user, r.metadata) for r in ledger.records()] == [(u, m) for u, m, _, _ in CALLS]


@pytest.mark.parametrize("by", ["metadata.tenant", "metadata.plan", "metadata.note", "user", "kind", None])
@pytest.mark.parametrize(
    "where",
    [None, {"metadata.tenant": "acme"}, {"metadata.plan": "pro", "kind": "chat"}, {"user": "u3"}, {"model": "x"}],
)
def test_sql_totals_match_the_reference_aggregation(ledger, by, where):
    expected = aggregate_records((r for r in _records() if matches(r, where or {})), by)
    got = ledger.totals(by, where=where)
    if by is None and not expected:
        expected = got  # the single zero row of an empty selection
    assert [(t.key, t.requests, t.cost, t.unknown_cost_requests) for t in got] == [
        (t.key, t.requests, t.cost, t.unknown_cost_requests) for t in expected
    ]


def test_a_tenant_total_is_the_sum_of_its_users(ledger):
    tenants = {t.key: t for t in ledger.totals("metadata.tenant")}
    users = ledger.totals("user", where={"metadata.tenant": "acme"})
    assert {t.key for t in users} == {"u1", "u2"}
    assert tenants["acme"].cost == sum((t.cost for t in users), Decimal(0)) == Decimal("0.00042")
    assert tenants["acme"].requests == sum(t.requests for t in users) == 3
    assert tenants[None].requests == 2  # u4 (no tenant key) and u5 (no metadata)


def test_records_filter_by_metadata(ledger):
    assert [r.user for r in ledger.records(where={"metadata.tenant": "globex"})] == ["u3", "u3"]
    assert [r.kind for r in ledger.records(where={"metadata.tenant": "acme", "user": "u1"})] == ["chat", "embeddings"]


def test_report_by_tenant_equals_the_sum_of_its_users_report(ledger, backend, capsys):
    assert cli.main(["report", "--db", backend.location, "--by", "metadata.tenant", "--format", "json"]) == 0
    tenants = {row["metadata.tenant"]: row for row in json.loads(capsys.readouterr().out, parse_float=Decimal)}
    argv = ["report", "--db", backend.location, "--by", "user", "--where", "metadata.tenant=acme", "--format", "json"]
    assert cli.main(argv) == 0
    users = json.loads(capsys.readouterr().out, parse_float=Decimal)
    assert [row["user"] for row in users] == ["u2", "u1"]
    assert tenants["acme"]["cost"] == sum(row["cost"] for row in users)
    assert tenants["acme"]["requests"] == sum(row["requests"] for row in users)
    assert cli.main(["export", "--db", backend.location, "--where", "metadata.plan=pro", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["user"], line["metadata"]) for line in lines] == [("u1", CALLS[0][1]), ("u1", CALLS[1][1])]
    assert cli.main(["export", "--db", backend.location, "--where", "user=u6", "--format", "csv"]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert json.loads(row["metadata"]) == CALLS[7][1]


def test_bad_dimensions_are_refused_before_any_query(ledger, capsys):
    with pytest.raises(UsageQueryError, match=r"metadata\.<key>"):
        ledger.totals("tenant")
    with pytest.raises(UsageQueryError, match="letters, digits"):
        ledger.totals("metadata.a'b")
    with pytest.raises(UsageQueryError, match="cannot filter on 'cost'"):
        ledger.totals(where={"cost": "1"})
    with pytest.raises(SystemExit) as exited:
        cli.main(["report", "--db", ":memory:", "--where", "tenant"])
    assert exited.value.code == 2
    assert "NAME=VALUE such as metadata.tenant=acme" in capsys.readouterr().err


def test_an_in_memory_store_filters_and_groups_in_python():
    store = MemoryUsageStore()
    store.write_many(_records())
    rows = queries.totals(store, "metadata.tenant", where={"kind": "chat"})
    assert [(t.key, t.requests) for t in rows] == [(None, 2), ("globex", 1), ("<script>alert(1)</script>", 1),
                                                   ("acme", 2)]  # fmt: skip


def test_a_schema_5_ledger_gains_the_metadata_column(tmp_path):
    path = str(tmp_path / "old.db")
    with UsageLedger(path) as ledger:
        ledger.record(UsageRecord(time=T0, user="old", cost="0.1"))
    conn = sqlite3.connect(path)
    with conn:
        for trigger in ("insert", "delete", "update"):  # the daily rollup (schema 8)
            conn.execute(f"DROP TRIGGER usage_daily_{trigger}")
        conn.execute("DROP TABLE usage_daily")
        conn.execute("DROP VIEW usage_all")
        conn.execute("ALTER TABLE usage_records DROP COLUMN metadata")
        conn.execute("ALTER TABLE usage_inbox DROP COLUMN metadata")
        conn.execute("INSERT INTO usage_inbox (record_id, time, user, streamed, outcome, kind) "
                     "VALUES ('inboxed', 1767225601.0, 'old', 0, 'ok', 'chat')")  # fmt: skip
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    store = SQLiteUsageStore(path)
    try:
        assert (store.migrated_from, store.schema_version) == (5, SCHEMA_VERSION)
        store.write_many([UsageRecord(time=T0 + 2, user="new", metadata={"tenant": "acme"})])
        got = [(r.user, r.metadata) for r in store.iter_records()]
        assert got == [("old", None), ("old", None), ("new", {"tenant": "acme"})]
    finally:
        store.close()
