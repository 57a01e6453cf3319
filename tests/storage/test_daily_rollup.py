"""The daily rollup (``usage_daily``) on every backend: reads over whole UTC days come from it, and what they
return equals the Python reference over the same records (``protocol.breakdown_records``) after writes,
with records still in the SQLite inbox, after a prune, after reconciliation fills billed costs, and on a
ledger migrated from the schema before the rollup."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from decimal import Decimal

import pytest

from openrouter_attribution.usage import queries
from openrouter_attribution.usage.ledger import open_store
from openrouter_attribution.usage.reconcile import Billed
from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.usage.stores.protocol import MemoryUsageStore
from openrouter_attribution.usage.stores.sqlite.store import register_functions

DAY = 86_400
D0 = 20_000 * DAY
PERIODS = [
    (None, None),
    (D0 + DAY, None),  # whole days, open end: the rollup only
    (D0 + DAY, D0 + 3 * DAY),
    (D0 + 3_600, None),  # a partial first day: its records, then the rollup
    (None, D0 + 2 * DAY + 7_200.5),  # a partial last day
    (D0 + DAY + 100, D0 + DAY + 200),  # inside one day: records only
    (D0 + 0.5, D0 + 3 * DAY + 0.25),
]
GROUPINGS = [(), ("user",), ("day", "model", "kind"), ("provider", "metadata.tenant"), ("session",)]
FILTERS = [{}, {"user": "app_1"}, {"metadata.tenant": "acme"}, {"kind": "chat", "model": "m/a"}]


def _records(n: int, seed: int, start: int = 0) -> list[UsageRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        failed = rng.random() < 0.1
        # Near midnight sometimes: the day of 23:59:59.9999999 is that day, not the next.
        second = rng.choice([rng.uniform(0, DAY), DAY - 1e-7, 0.0, rng.uniform(DAY - 1, DAY)])
        out.append(UsageRecord(
            record_id=f"r{i}", time=D0 + rng.randrange(4) * DAY + second,
            user=rng.choice(["app_1", "app_2", "app_3", None, ""]), session_id=rng.choice([None, "s1", "s2"]),
            model_requested=rng.choice(["m/a", "m/b"]), model_used=None if failed else rng.choice(["m/a", "m/c", ""]),
            provider=rng.choice([None, "OpenAI", "Anthropic"]), kind=rng.choice(["chat", "embeddings"]),
            prompt_tokens=None if failed else rng.randint(0, 5_000), completion_tokens=rng.randint(0, 900),
            cached_tokens=rng.choice([None, 3]), reasoning_tokens=rng.choice([None, 7]),
            cost=None if failed else Decimal(rng.randint(1, 10**16)).scaleb(-rng.randint(0, 17)),
            outcome="RateLimitError" if failed else rng.choice(["ok", "abandoned"]),
            generation_id=f"g{i}", metadata=rng.choice([None, {"tenant": "acme"}, {"tenant": "initech", "plan": "x"}]),
        ))  # fmt: skip
    return out


def _sorted(rows):
    return sorted(rows, key=lambda item: tuple((k is not None, k or "") for k in item[0]))  # None before ""


def _check(store, expected) -> None:
    """Every period x grouping x filter: the store's reads equal ``expected(by, since, until, where)``."""
    for since, until in PERIODS:
        for by in GROUPINGS:
            for where in FILTERS:
                got = _sorted(queries.breakdown(store, by, since=since, until=until, where=where))
                assert got == _sorted(expected(by, since, until, where)), (by, since, until, where)
        assert queries.totals(store, "model", since=since, until=until, user="app_2") == queries.rollup(
            expected(("model",), since, until, {"user": "app_2"}), 0
        )


def _reference(records: list[UsageRecord]):
    memory = MemoryUsageStore()
    memory.write_many(records)
    return lambda by, since, until, where: queries.breakdown(memory, by, since=since, until=until, where=where)


def test_reads_over_whole_days_use_the_rollup(backend):
    store = open_store(backend.location)
    try:
        store.write_many(_records(50, seed=1))

        def records_read(*args):
            raise AssertionError(f"read the records: {args}")

        store.breakdown = records_read  # type: ignore[method-assign]
        assert queries.totals(store, "metadata.tenant", since=D0 + DAY, where={"kind": "chat"})
        queries.breakdown(store, ["day", "user", "provider"], since=D0, until=D0 + 2 * DAY)
        with pytest.raises(AssertionError, match="read the records"):
            queries.breakdown(store, ["session"], since=D0)
        with pytest.raises(AssertionError, match="read the records"):
            queries.breakdown(store, ["user"], since=D0 + 1)
    finally:
        store.close()


def test_the_rollup_equals_the_reference_through_writes_prune_and_reconciliation(backend):
    store = open_store(backend.location)
    try:
        records = _records(400, seed=2)
        for at in range(0, 390, 100):
            store.write_many(records[at : at + 100])
        for rec in records[390:]:  # small commits: SQLite keeps them in the inbox, outside the rollup
            store.write_many([rec])
        if backend.name == "sqlite":
            assert store._fetch("SELECT COUNT(*) FROM usage_inbox", [])[0][0] == 10
        _check(store, _reference(records))

        assert store.prune(D0 + DAY + 43_200) > 0
        kept = [rec for rec in records if rec.time >= D0 + DAY + 43_200]
        later = _records(6, seed=3, start=1_000)
        for rec in later:
            store.write_many([rec])
        _check(store, _reference(kept + later))

        # Reconciliation fills billed costs (and user mismatches): the reference is then a scan of the records.
        billed = [Billed(record_id=rec.record_id, status="billed", at=1.0, user_mismatch=i % 3 == 0,
                         billed_cost=None if i % 4 == 0 else Decimal(i).scaleb(-13))
                  for i, rec in enumerate(kept[::3])]  # fmt: skip
        store.backend().reconcile_apply(billed)
        assert queries.totals(store, None)[0].reconciled == sum(b.billed_cost is not None for b in billed)
        _check(store, lambda by, since, until, where: store.breakdown(by, since, until, where))
    finally:
        store.close()


def test_a_ledger_from_before_the_rollup_is_filled_when_migrated(backend):
    records = _records(300, seed=4)
    store = open_store(backend.location)
    schema = store.schema_version
    try:
        store.write_many(records)
    finally:
        store.close()
    drop = [f"DROP TRIGGER usage_daily_{op}" + ("" if backend.name == "sqlite" else " ON usage_records")
            for op in ("insert", "delete", "update")] + ["DROP TABLE usage_daily"]  # fmt: skip
    if backend.name == "sqlite":
        with contextlib.closing(sqlite3.connect(backend.location)) as conn:
            for sql in [*drop, f"PRAGMA user_version = {schema - 1}"]:
                conn.execute(sql)
            conn.commit()
    else:
        for sql in [*drop, f"UPDATE usage_schema SET version = {schema - 1}"]:
            backend.write(sql)
    store = open_store(backend.location)
    try:
        assert store.schema_version == schema  # PostgreSQL connects (and migrates) on first use
        assert store.migrated_from == schema - 1
        _check(store, _reference(records))
    finally:
        store.close()


def test_another_program_writing_the_file_registers_the_ledger_functions(tmp_path):
    path = str(tmp_path / "usage.db")
    store = open_store(path)
    store.write_many([UsageRecord(record_id="w", time=2, cost=Decimal("0.2"))])  # the group's row: an insert adds to it
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        with pytest.raises(sqlite3.OperationalError, match="usage_decimal_add"):
            conn.execute("INSERT INTO usage_records (record_id, time, streamed, outcome, cost) "
                         "VALUES ('x', 1, 0, 'ok', '0.1')")  # fmt: skip
        register_functions(conn)
        conn.execute("INSERT INTO usage_records (record_id, time, streamed, outcome, cost) "
                     "VALUES ('x', 1, 0, 'ok', '0.1')")  # fmt: skip
        conn.commit()
    store = open_store(path)
    try:
        assert queries.totals(store, None)[0].cost == Decimal("0.3")
    finally:
        store.close()
