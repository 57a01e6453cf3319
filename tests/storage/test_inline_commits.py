"""Commits led by the calling thread (durability="committed"), on every backend: who commits, bounded
waits, group commit, recovery."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from openrouter_attribution.usage import UsageLedger, UsageRecord, open_store

COMMIT_TIMEOUT = 0.2
# A blocked call returns after commit_timeout plus an fsynced spool append; far below the 10 s SQLite
# busy timeout and the unbounded wait of a PostgreSQL insert behind a table lock.
BOUND = COMMIT_TIMEOUT + 1.0


class Spy:
    """Notes which thread runs each commit of a ledger's store (and how many records it holds)."""

    def __init__(self, store: Any, delay: float = 0.0) -> None:
        self.inline: list[tuple[threading.Thread, int]] = []
        self.background: list[tuple[threading.Thread, int]] = []
        within, many = store.write_within, store.write_many

        def write_within(records, timeout):
            time.sleep(delay)
            done = within(records, timeout)
            if done:
                self.inline.append((threading.current_thread(), len(records)))
            return done

        def write_many(records):
            time.sleep(delay)
            many(records)
            self.background.append((threading.current_thread(), len(records)))

        store.write_within, store.write_many = write_within, write_many


def committed(backend: Any, tmp_path: Any) -> UsageLedger:
    """A ledger that commits on the caller's thread (these tests are about those commits)."""
    return UsageLedger(
        backend.location, durability="committed", commit_timeout=COMMIT_TIMEOUT, spool=tmp_path / "spool"
    )


def _records(prefix: str, n: int) -> list[UsageRecord]:
    return [UsageRecord(user=f"app_{i % 3}", prompt_tokens=i, cost=Decimal("0.0000054"), latency_s=0.25 + i,
                        model_used="openai/gpt-4o-mini", streamed=bool(i % 2), record_id=f"{prefix}-{i:03d}")
            for i in range(n)]  # fmt: skip


@contextlib.contextmanager
def locked(backend: Any) -> Iterator[None]:
    """Another client holds the lock every insert needs (SQLite's write lock, a PostgreSQL table lock)."""
    if backend.name == "sqlite":
        conn: Any = sqlite3.connect(backend.location, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    with psycopg.connect(backend.location) as conn, conn.transaction():
        conn.execute("LOCK TABLE usage_records IN EXCLUSIVE MODE")
        yield


def test_a_lone_caller_commits_on_its_own_thread_and_reads_back_exactly(backend):
    records = _records("r", 20)
    with UsageLedger(backend.location, durability="committed") as ledger:
        spy = Spy(ledger._store)
        for rec in records:
            ledger.record(rec)
            assert rec.record_id in backend.record_ids()  # committed before record() returned
        # PostgreSQL connects on first use, which only the writer thread does: that one record waits for it.
        assert len(spy.background) <= 1
        assert [thread for thread, _ in spy.inline] == [threading.main_thread()] * (20 - len(spy.background))
        assert list(ledger.records()) == records
        assert (ledger.written, ledger.spooled, ledger.dropped, ledger.errors) == (20, 0, 0, 0)


def test_write_within_never_connects(backend):
    store = open_store(backend.location)
    try:
        rec = UsageRecord(record_id="x")
        if backend.name == "postgres":
            assert store.write_within([rec], 5) is False  # no connection yet: that is the writer thread's job
            assert backend.rows("SELECT to_regclass('usage_records') IS NULL") == [(True,)]  # never connected
            store.write_many([UsageRecord(record_id="first")])
        assert store.write_within([rec], 5) is True
        assert "x" in backend.record_ids()
    finally:
        store.close()


def test_a_locked_store_delays_a_call_by_commit_timeout_then_one_row(backend, tmp_path):
    ledger = committed(backend, tmp_path)
    try:
        ledger.record(UsageRecord(record_id="before"))
        with locked(backend):
            for name in ("blocked-1", "blocked-2"):
                started = time.perf_counter()
                ledger.record(UsageRecord(record_id=name))
                assert time.perf_counter() - started < BOUND
            assert ledger.spooled == 2
            spooled = "".join(p.read_text() for p in (tmp_path / "spool").glob("spool-*.jsonl"))
            assert '"blocked-1"' in spooled  # fsynced before record() returned
            assert '"blocked-2"' in spooled
            assert backend.record_ids() == ["before"]  # readers are not blocked; the blocked two wait
    finally:
        ledger.close()
    assert sorted(backend.record_ids()) == ["before", "blocked-1", "blocked-2"]  # committed once each


def test_inline_commits_resume_once_the_store_answers_again(backend, tmp_path):
    with committed(backend, tmp_path) as ledger:
        ledger.record(UsageRecord(record_id="warm"))
        with locked(backend):
            ledger.record(UsageRecord(record_id="blocked"))
        deadline = time.monotonic() + 20
        while (ledger.pending or ledger._spool.pending) and time.monotonic() < deadline:
            time.sleep(0.02)
        spy = Spy(ledger._store)
        for rec in _records("after", 5):
            ledger.record(rec)
        assert [thread for thread, _ in spy.inline][-4:] == [threading.main_thread()] * 4
    assert sorted(backend.record_ids()) == ["after-000", "after-001", "after-002", "after-003", "after-004",
                                            "blocked", "warm"]  # fmt: skip


def test_threads_finishing_together_share_commits(backend):
    threads, per_thread = 16, 10
    with UsageLedger(backend.location, durability="committed") as ledger:
        ledger.record(UsageRecord(record_id="warm"))
        spy = Spy(ledger._store, delay=0.005)  # a commit that takes a while: the others queue behind it

        def work(t: int) -> None:
            for rec in _records(f"t{t}", per_thread):
                ledger.record(rec)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        commits = spy.inline + spy.background
        assert sum(n for _, n in commits) == threads * per_thread
        assert len(commits) < threads * per_thread / 4
        assert ledger.spooled == 0
    ids = backend.record_ids()
    assert len(ids) == len(set(ids)) == threads * per_thread + 1


def test_postgres_prepared_inserts_come_back_after_deallocate_all(postgres_server):
    dsn = postgres_server.create_database("deallocate")
    with UsageLedger(dsn, durability="committed") as ledger:
        ledger.record(UsageRecord(record_id="a"))
        ledger.record(UsageRecord(record_id="b"))
        with ledger._store.transaction() as conn:  # what psycopg runs after a rollback once it prepared
            conn.execute("DEALLOCATE ALL")
        spy = Spy(ledger._store)
        for rec in _records("c", 4):
            ledger.record(rec)
        assert (ledger.spooled, ledger.dropped) == (0, 0)
        assert len(spy.inline) >= 2  # the writer thread prepared them again, then callers led again
        assert sorted(r.record_id for r in ledger.records()) == ["a", "b", "c-000", "c-001", "c-002", "c-003"]


def test_postgres_a_value_the_prepared_insert_refuses_goes_through_psycopg(postgres_server):
    dsn = postgres_server.create_database("adapt")
    with UsageLedger(dsn, durability="committed") as ledger:
        ledger.record(UsageRecord(record_id="a"))
        ledger.record(UsageRecord(record_id="float-tokens", prompt_tokens=9.0))  # type: ignore[arg-type]
        assert (ledger.spooled, ledger.dropped) == (0, 0)
        assert [r.prompt_tokens for r in ledger.records() if r.record_id == "float-tokens"] == [9]


def _record_in_child(location: str, spool: str) -> None:
    ledger = _PARENT_LEDGER[0]
    assert ledger is not None
    ledger.record(UsageRecord(record_id="from-child"))
    if ledger.spooled != 1:
        raise SystemExit(f"the child did not spool its record: spooled={ledger.spooled}")


_PARENT_LEDGER: list[UsageLedger | None] = [None]


def test_a_forked_child_spools_instead_of_using_the_parents_connection(backend, tmp_path):
    spool = str(tmp_path / "spool")
    ledger = UsageLedger(backend.location, durability="committed", spool=spool)
    _PARENT_LEDGER[0] = ledger
    try:
        ledger.record(UsageRecord(record_id="parent"))
        child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(backend.location, spool))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert backend.record_ids() == ["parent"]  # the child never wrote through the inherited connection
        ledger.record(UsageRecord(record_id="parent-2"))  # the parent's commits are unaffected
    finally:
        _PARENT_LEDGER[0] = None
        ledger.close()
    with UsageLedger(backend.location, spool=spool) as reopened:  # a new process replays the child's spool
        reopened.flush()
    assert sorted(backend.record_ids()) == ["from-child", "parent", "parent-2"]


def test_sqlite_transactions_wait_the_full_busy_timeout_after_an_inline_commit(tmp_path):
    from openrouter_attribution.usage import SQLiteUsageStore

    store = SQLiteUsageStore(tmp_path / "usage.db", busy_timeout=3.0)
    try:
        assert store.write_within([UsageRecord(record_id="inline")], COMMIT_TIMEOUT)  # waits 0.2 s at most
        with store.transaction() as conn:  # what features built on the store write through
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 3000
    finally:
        store.close()


def test_postgres_a_refused_insert_names_the_error_not_the_row(postgres_server):
    from openrouter_attribution.usage import UsageStoreError

    store = open_store(postgres_server.create_database("refused"))
    try:
        store.write_many([UsageRecord(record_id="ok")])
        bad = UsageRecord(user="app_secret_42", outcome=None, record_id="bad")  # type: ignore[arg-type]
        for write in (store.write_many, lambda records: store.write_within(records, 5)):
            with pytest.raises(UsageStoreError, match="23502") as caught:  # not_null_violation
                write([bad])
            assert "app_secret_42" not in str(caught.value)  # the server's DETAIL line quotes the row
        assert store.write_within([UsageRecord(record_id="after")], 5) is True  # the connection still works
    finally:
        store.close()
