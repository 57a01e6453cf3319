"""The concurrency requirement, verbatim.

"8 threads and 2 processes writing 5,000 records in total into one SQLite ledger lose none and duplicate none"
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import threading
from decimal import Decimal

from openrouter_attribution.usage import UsageLedger, UsageRecord

THREADS, PROCESSES = 8, 2
PER_THREAD, PER_PROCESS = 375, 1000  # 8 * 375 + 2 * 1000 = 5,000
COST = Decimal("0.000000123")


def _records(prefix: str, n: int) -> list[UsageRecord]:
    return [
        UsageRecord(user=f"{prefix}-{i % 4}", cost=COST, prompt_tokens=1, record_id=f"{prefix}-{i:05d}")
        for i in range(n)
    ]


def _write(ledger: UsageLedger, prefix: str, n: int) -> None:
    recs = _records(prefix, n)
    for rec in recs:
        ledger.record(rec)
    for rec in recs[:25]:
        ledger.record(rec)  # written twice on purpose: must not duplicate


def _process_main(path: str, name: str, barrier) -> None:
    barrier.wait(60)
    with UsageLedger(path, flush_interval=0.01) as ledger:
        _write(ledger, name, PER_PROCESS)
        ledger.flush()
        ledger.record(_records(name, 1)[0])  # once more, after a flush: ignored by the store
    if ledger.errors or ledger.dropped:
        raise SystemExit(f"{name}: errors={ledger.errors} dropped={ledger.dropped}")


def test_threads_and_processes_lose_none_and_duplicate_none(tmp_path):
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    procs = [ctx.Process(target=_process_main, args=(path, f"proc{i}", barrier)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    barrier.wait(60)  # the processes open the (new) database at the same time as this one
    with UsageLedger(path, flush_interval=0.01) as ledger:
        threads = [threading.Thread(target=_write, args=(ledger, f"thread{i}", PER_THREAD)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * PROCESSES
        assert (ledger.errors, ledger.dropped) == (0, 0)

        total = ledger.totals(None)[0]
        assert total.requests == 5000
        assert total.cost == COST * 5000
        ids = [r.record_id for r in ledger.records()]

    expected = {r.record_id for i in range(THREADS) for r in _records(f"thread{i}", PER_THREAD)}
    expected |= {r.record_id for i in range(PROCESSES) for r in _records(f"proc{i}", PER_PROCESS)}
    assert len(ids) == len(set(ids)) == 5000
    assert set(ids) == expected
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM usage_records").fetchone()[0] == 5000
