"""The dashboard's reads (queries.breakdown, recent_records) agree on every backend with the Python
reference (protocol.breakdown_records, recent_from), exact costs and read-only opening included."""

from __future__ import annotations

from decimal import Decimal

import pytest

from openrouter_attribution.usage import queries
from openrouter_attribution.usage.ledger import open_store
from openrouter_attribution.usage.records import UsageRecord, UsageStoreError
from openrouter_attribution.usage.stores.protocol import MemoryUsageStore

DAY = 86_400.0
RECORDS = [
    UsageRecord(record_id="r1", time=20_000 * DAY + 5, user="app_1", model_used="m/a", kind="chat",
                cost=Decimal("0.000000123456"), prompt_tokens=10, completion_tokens=2, generation_id="g1",
                metadata={"tenant": "acme", "plan": "pro"}),
    UsageRecord(record_id="r2", time=20_000 * DAY + 86_399.9999999, user="app_1", model_requested="m/b",
                outcome="RateLimitError"),
    UsageRecord(record_id="r3", time=20_001 * DAY, user="app_2", model_used="m/a", kind="embeddings",
                cost=Decimal("1999.123456789012")),
    UsageRecord(record_id="r4", time=20_001 * DAY + 7, user=None, model_used="m/a", cost=Decimal("0.1"),
                session_id="s", metadata={"tenant": "acme"}),
    # 13 decimals: the SQLite read falls back to its exact aggregate for this group.
    UsageRecord(record_id="r5", time=20_002 * DAY, user="app_3", model_used="m/c", cost=Decimal("0.0000000000001")),
]  # fmt: skip
GROUPINGS = [(), ("user",), ("day", "model", "kind"), ("session", "provider"), ("metadata.tenant", "day")]
FILTERS = [{}, {"user": "app_1"}, {"model": "m/a"}, {"metadata.tenant": "acme"},
           {"kind": "embeddings", "model": "m/a"}, {"metadata.plan": "pro", "user": "app_1"}]  # fmt: skip


def _sorted(rows):
    return sorted(rows, key=lambda item: tuple("" if k is None else k for k in item[0]))


@pytest.mark.parametrize("by", GROUPINGS)
@pytest.mark.parametrize("where", FILTERS)
def test_breakdown_matches_the_python_reference(backend, by, where):
    store = open_store(backend.location)
    reference = MemoryUsageStore()
    try:
        store.write_many(RECORDS[:2])
        store.write_many(RECORDS[2:3])  # a small commit: SQLite keeps it in the inbox until a fold
        store.write_many(RECORDS[3:])
        reference.write_many(RECORDS)
        got = queries.breakdown(store, by, where=where)
        assert _sorted(got) == _sorted(queries.breakdown(reference, by, where=where))
        since = 20_000 * DAY + 6
        assert _sorted(queries.breakdown(store, by, since=since, where=where)) == _sorted(
            queries.breakdown(reference, by, since=since, where=where)
        )
        assert queries.recent_records(store, 2, where=where) == queries.recent_records(reference, 2, where=where)
    finally:
        store.close()


def test_rollup_adds_up_to_the_totals_of_the_report(backend):
    store = open_store(backend.location)
    try:
        store.write_many(RECORDS)
        rows = queries.breakdown(store, ["day", "model", "kind"])
        assert queries.rollup(rows, None) == queries.totals(store, None)
        assert queries.rollup(rows, 1) == queries.totals(store, "model")
        assert queries.rollup(rows, 0) == queries.totals(store, "day")
    finally:
        store.close()


def test_a_read_only_store_reads_and_never_writes(backend):
    writer = open_store(backend.location)
    writer.write_many(RECORDS)
    writer.close()
    reader = open_store(backend.location, create=False, read_only=True)
    try:
        assert queries.totals(reader, None)[0].requests == len(RECORDS)
        with pytest.raises(Exception, match="read.?only"):
            reader.write_many([UsageRecord(user="app_9")])
    finally:
        reader.close()
    assert len(backend.record_ids()) == len(RECORDS)


def test_a_read_only_store_refuses_a_ledger_it_would_have_to_create(backend):
    if backend.name == "sqlite":
        with pytest.raises(UsageStoreError):
            open_store(backend.location, create=False, read_only=True)
        return
    store = open_store(backend.location, create=False, read_only=True)
    with pytest.raises(UsageStoreError, match="schema 0"):
        queries.totals(store, None)
    store.close()
