"""SQLite's inbox of small commits: every read sees its records, once; folds keep one row per record id."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from openrouter_attribution.usage import UsageLedger, UsageRecord
from openrouter_attribution.usage.stores.sqlite.store import FOLD_AT, SQLiteUsageStore


def counts(path: Path) -> tuple[int, int]:
    """Rows in (usage_inbox, usage_records), read with plain sqlite3 (no fold)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return (conn.execute("SELECT COUNT(*) FROM usage_inbox").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM usage_records").fetchone()[0])  # fmt: skip


def test_a_durable_record_waits_in_the_inbox_and_every_read_sees_it(tmp_path):
    path = tmp_path / "usage.db"
    with UsageLedger(path, durability="committed") as ledger:
        ledger.record(UsageRecord(user="app_1", cost="0.25", record_id="gen-1"))
        assert counts(path) == (1, 0)
        assert [(t.key, t.requests, t.cost) for t in ledger.totals("user")] == [("app_1", 1, Decimal("0.25"))]
        assert [r.record_id for r in ledger.records()] == ["gen-1"]
        with UsageLedger(path) as other:  # another process's view: no fold needed to see it
            assert other.totals(None)[0].requests == 1
        with contextlib.closing(sqlite3.connect(path)) as conn:  # what the README tells other tools to read
            assert conn.execute("SELECT record_id, cost FROM usage_all").fetchall() == [("gen-1", "0.25")]


def test_the_fold_at_th_small_commit_moves_the_inbox_to_usage_records(tmp_path):
    path = tmp_path / "usage.db"
    store = SQLiteUsageStore(path)
    try:
        for i in range(FOLD_AT - 1):
            store.write_many([UsageRecord(user="app_1", record_id=f"gen-{i}")])
        assert counts(path) == (FOLD_AT - 1, 0)
        store.write_many([UsageRecord(user="app_1", record_id="gen-last")])
        assert counts(path) == (0, FOLD_AT)
    finally:
        store.close()


def test_one_row_per_record_id_across_the_inbox_and_the_table(tmp_path):
    path = tmp_path / "usage.db"
    first, second = SQLiteUsageStore(path), SQLiteUsageStore(path)
    try:
        first.write_many([UsageRecord(user="app_1", cost="0.1", record_id="gen-a")])
        second.write_many([UsageRecord(user="app_1", cost="0.1", record_id="gen-a")])  # a second recorder
        first.write_many([UsageRecord(user="app_2", record_id=f"gen-{i}") for i in range(FOLD_AT)] +
                         [UsageRecord(user="app_1", cost="0.1", record_id="gen-b")])  # fmt: skip
        second.write_many([UsageRecord(user="app_1", cost="0.1", record_id="gen-b")])  # stored already
        assert counts(path) == (1, FOLD_AT + 2)
        for store in (first, second):
            totals = {t.key: (t.requests, t.cost) for t in store.totals("user")}
            assert totals == {"app_1": (2, Decimal("0.2")), "app_2": (FOLD_AT, None)}
            assert sorted(r.record_id for r in store.iter_records(user="app_1")) == ["gen-a", "gen-b"]
    finally:
        first.close()
        second.close()
    assert counts(path) == (0, FOLD_AT + 2)  # closing folds what a store left


def test_what_a_killed_process_left_in_the_inbox_is_folded_when_a_ledger_opens(tmp_path):
    path = tmp_path / "usage.db"
    SQLiteUsageStore(path).close()
    script = (
        "import os, sys\n"
        "from openrouter_attribution.usage import UsageLedger, UsageRecord\n"
        'ledger = UsageLedger(sys.argv[1], durability="committed")\n'
        "for i in range(3):\n"
        "    ledger.record(UsageRecord(user='app_1', record_id=f'gen-{i}'))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr
    assert counts(path) == (3, 0)
    store = SQLiteUsageStore(path)
    try:
        assert counts(path) == (0, 3)
        assert [r.record_id for r in store.iter_records()] == ["gen-0", "gen-1", "gen-2"]
    finally:
        store.close()


def test_a_read_pages_through_both_tables_in_order(tmp_path):
    store = SQLiteUsageStore(tmp_path / "usage.db")
    try:
        # 2,500 records in usage_records (one batch) and a few in the inbox, times interleaved.
        store.write_many([UsageRecord(time=float(2 * i), record_id=f"t-{i:05d}") for i in range(2500)])
        store.write_many([UsageRecord(time=float(2 * i + 1), record_id=f"i-{i:05d}") for i in (0, 999, 1499)])
        times = [r.time for r in store.iter_records()]
        assert times == sorted(times)
        assert len(times) == 2503
        assert [r.record_id for r in store.iter_records(since=1998.0, until=2000.0)] == ["t-00999", "i-00999"]
    finally:
        store.close()
