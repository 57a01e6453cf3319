"""Nothing lost, nothing twice, on every backend: concurrency, two recorders, killed processes, outages."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from openrouter_attribution import UsageLedger, errors
from openrouter_attribution.langchain import ChatOpenRouter, UsageCallbackHandler
from tests.storage.workers import THREADS, per_thread, thread_records

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4


def _chat(server: Any, ledger: UsageLedger, **kwargs: Any) -> ChatOpenRouter:
    return ChatOpenRouter(model="openai/gpt-4o-mini", base_url=server.base_url, api_key=server.api_key,
                          max_retries=0, ledger=ledger, **kwargs)  # fmt: skip


def test_8_threads_in_4_processes_write_5000_records_none_lost_none_twice(backend):
    from tests.storage.workers import write_from_threads

    UsageLedger(backend.location).close()  # the schema exists before the processes race to write
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=write_from_threads, args=(backend.location, p, barrier)) for p in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    ids = backend.record_ids()
    expected = {
        r.record_id for p in range(PROCESSES) for t in range(THREADS) for r in thread_records(p, t, per_thread(p))
    }
    assert len(expected) == 5000
    assert len(ids) == len(set(ids)) == 5000
    assert set(ids) == expected


def test_a_call_recorded_by_ledger_and_handler_is_one_row(backend, fake_openrouter):
    with UsageLedger(backend.location) as ledger:
        handler = UsageCallbackHandler(ledger)
        config: Any = {"callbacks": [handler]}
        _chat(fake_openrouter, ledger).invoke("hi", user="app_1", config=config)
        list(_chat(fake_openrouter, ledger).stream("hi", user="app_1", config=config))
        with pytest.raises(errors.RateLimitError):  # no generation id: the error carries the record id
            _chat(fake_openrouter, ledger, default_headers={"X-Fake-Fault": "429"}).invoke(
                "hi", user="app_1", config=config
            )
    rows = backend.rows("SELECT generation_id, outcome FROM usage_records")
    assert len(rows) == 3
    assert {gid for gid, _ in rows} - {None} == set(fake_openrouter.generations)
    assert sorted(outcome for _, outcome in rows) == ["RateLimitError", "ok", "ok"]


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_killed_right_after_the_500th_returned_call_leaves_500_rows(backend, fake_openrouter, sig):
    command = [sys.executable, "-m", "tests.storage.workers", "calls", backend.location, sig,
               fake_openrouter.base_url, fake_openrouter.api_key, "500"]  # fmt: skip
    child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert child.stdout.strip() == "returned 500", child.stderr[-2000:]
    assert child.returncode == -getattr(__import__("signal"), sig)
    with UsageLedger(backend.location) as ledger:  # opening replays what a dead process left spooled
        ledger.flush()
    rows = backend.rows("SELECT generation_id FROM usage_records")
    assert len(rows) == len({gid for (gid,) in rows}) == 500
    assert {gid for (gid,) in rows} == set(fake_openrouter.generations)


def test_postgres_stopped_for_the_middle_third_of_1000_calls(postgres_server, fake_openrouter, tmp_path):
    dsn = postgres_server.create_database("outage")
    ledger = UsageLedger(dsn, spool=tmp_path / "spool", retry_interval=0.2)
    model = _chat(fake_openrouter, ledger)
    slowest = 0.0
    try:
        for i in range(1000):
            if i == 333:
                postgres_server.stop_server()
            elif i == 667:
                postgres_server.start()
            started = time.perf_counter()
            assert model.invoke(f"q{i}", user=f"app_{i % 3}").content
            slowest = max(slowest, time.perf_counter() - started)
        assert ledger.spooled > 0  # the middle third went to the spool
    finally:
        if not postgres_server._running:
            postgres_server.start()
        ledger.close()
    assert slowest < ledger_commit_bound()
    import psycopg

    with psycopg.connect(dsn) as conn:
        count, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT generation_id) FROM usage_records").fetchone()
    assert count == distinct == 1000
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))  # replayed and removed


def ledger_commit_bound() -> float:
    """A call waits at most commit_timeout (0.25 s) for the store; the rest is the call itself (generous)."""
    return 0.25 + 1.0
