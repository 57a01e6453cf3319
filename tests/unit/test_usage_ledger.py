"""UsageLedger: batching, flush/close, and storage failures that never reach the caller."""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
from decimal import Decimal

import pytest

from openrouter_attribution.errors import ConfigurationError, UsageStoreWarning
from openrouter_attribution.usage import (
    MemoryUsageStore,
    SQLiteUsageStore,
    UsageLedger,
    UsageRecord,
    UsageStoreError,
)

LOGGER = "openrouter_attribution.usage"


def records(n, **fields):
    return [UsageRecord(user=f"app_{i % 5}", cost=Decimal("0.000001"), prompt_tokens=i, **fields) for i in range(n)]


def test_record_flush_and_counters(tmp_path):
    with UsageLedger(tmp_path / "usage.db", flush_interval=10) as ledger:
        for rec in records(250):
            ledger.record(rec)
        assert ledger.flush(timeout=10)  # flush wakes the writer, it does not wait for the interval
        assert (ledger.written, ledger.dropped, ledger.errors, ledger.pending) == (250, 0, 0, 0)
        overall = ledger.totals(None)[0]
        assert overall.requests == 250
        assert overall.cost == Decimal("0.000250")


def test_rewriting_a_record_does_not_duplicate_it(tmp_path):
    rec = UsageRecord(user="app_1", cost=Decimal("0.5"))
    with UsageLedger(tmp_path / "usage.db") as ledger:
        ledger.record(rec)
        ledger.flush()
        ledger.record(rec)
        assert ledger.totals(None)[0].requests == 1


def test_data_survives_close_and_reopen(tmp_path):
    path = tmp_path / "usage.db"
    with UsageLedger(path) as ledger:
        for rec in records(10):
            ledger.record(rec)
    with UsageLedger(path) as ledger:
        assert ledger.totals(None)[0].requests == 10


def test_close_is_idempotent_and_unregisters_atexit(tmp_path, monkeypatch):
    registered, unregistered = [], []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", unregistered.append)
    ledger = UsageLedger(tmp_path / "usage.db")
    assert registered == [ledger.close]
    ledger.record(UsageRecord())
    ledger.close()
    ledger.close()
    assert unregistered == [ledger.close]
    assert ledger.written == 1
    assert not ledger._writer._thread.is_alive()


def test_record_after_close_is_dropped_and_logged_once(tmp_path, caplog):
    ledger = UsageLedger(tmp_path / "usage.db")
    ledger.close()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        ledger.record(UsageRecord())
        ledger.record(UsageRecord())
    assert ledger.dropped == 2
    assert ledger.errors == 0
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG]
    assert "ledger closed" in caplog.records[0].getMessage()


def test_repr_shows_the_path_only(tmp_path):
    with UsageLedger(tmp_path / "usage.db") as ledger:
        assert repr(ledger) == f"UsageLedger({str(tmp_path / 'usage.db')!r})"
        assert ledger.path == str(tmp_path / "usage.db")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flush_interval": 0}, "flush_interval"),
        ({"max_queue": 0}, "max_queue"),
        ({"durability": "sometimes"}, "durability must be 'durable', 'committed' or 'buffered', got 'sometimes'"),
        ({"commit_timeout": -1}, "commit_timeout must be > 0 seconds"),
    ],
)
def test_invalid_configuration_raises_at_construction(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        UsageLedger(MemoryUsageStore(), **kwargs)


def test_a_store_passed_in_stays_open_after_close():
    store = MemoryUsageStore()
    with UsageLedger(store) as ledger:
        ledger.record(UsageRecord(user="a"))
    assert [r.user for r in store.iter_records()] == ["a"]


def test_many_threads_share_one_ledger(tmp_path):
    with UsageLedger(tmp_path / "usage.db", flush_interval=0.01) as ledger:

        def work():
            for rec in records(300):
                ledger.record(rec)
            ledger.flush()

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ledger.totals(None)[0].requests == 1800


# -- failures: never raised, always counted and logged once per kind ------------------------------------


@pytest.mark.parametrize("where", ["missing_folder", "parent_is_a_file", "proc"])
def test_a_location_without_its_folder_raises_at_construction(tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = {"missing_folder": tmp_path / "nested" / "usage.db", "parent_is_a_file": blocker / "usage.db",
            "proc": "/proc/openrouter-attribution-test/usage.db"}[where]  # fmt: skip
    with pytest.raises(ConfigurationError, match="does not exist") as info:
        UsageLedger(path)
    assert str(path) in str(info.value)
    assert not (tmp_path / "nested").exists()  # nothing is created


@pytest.mark.parametrize(
    "location", ["postgresql:", "mysql://app:s3cret@db/usage", "redis://:s3cret@cache:6379/0", "  "]
)
def test_a_location_that_is_no_ledger_raises_without_its_password(location, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        UsageLedger(location)
    assert "s3cret" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no folder "postgresql:" or file left behind


def test_a_postgres_dsn_is_not_taken_for_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with pytest.warns(UsageStoreWarning) as warned:
        ledger = UsageLedger("postgresql://app:s3cret@127.0.0.1:1/usage", commit_timeout=0.05, retry_interval=60)
    try:
        # Said once, at creation, pointing at the line that created the ledger, without the password.
        (warning,) = warned
        assert warning.filename == __file__
        assert str(warning.message).startswith("cannot connect to the ledger postgresql://app:***@127.0.0.1:1/usage")
        assert "calls go on" in str(warning.message)
        assert "s3cret" not in str(warning.message)
        ledger.record(UsageRecord(user="app_1"))  # calls never fail: the record waits in the journal
        assert ledger.path == "postgresql://app:***@127.0.0.1:1/usage"
        assert "s3cret" not in repr(ledger)
        assert not (tmp_path / "postgresql:").exists()
        assert ledger.spool_folder is not None
        assert ledger.spool_folder.startswith(str(tmp_path / "state" / "openrouter-attribution" / "spool"))
    finally:
        ledger.close()


def test_a_corrupt_file_spools_and_counts_instead_of_raising(tmp_path, caplog):
    path = tmp_path / "usage.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ledger = UsageLedger(path, commit_timeout=5)
        for rec in records(3):
            ledger.record(rec)
        assert ledger.flush(timeout=5)
    assert ledger.errors >= 2  # the open, then the first write
    assert (ledger.dropped, ledger.written, ledger.spooled) == (0, 0, 3)
    assert "open failed" in caplog.records[0].getMessage()
    assert "app_" not in caplog.text  # no record contents
    with pytest.raises(UsageStoreError, match="could not be opened"):
        ledger.totals()
    ledger.close()


class _TinyStore(SQLiteUsageStore):
    """A database that can hold only a few pages: 'disk full' on demand."""

    def _configure_connection(self, conn: sqlite3.Connection) -> None:
        super()._configure_connection(conn)
        conn.execute("PRAGMA max_page_count = 19")  # the schema itself takes 17 pages


class _ReadOnlyStore(SQLiteUsageStore):
    def _configure_connection(self, conn: sqlite3.Connection) -> None:
        super()._configure_connection(conn)
        conn.execute("PRAGMA query_only = ON")


def test_full_database_is_counted_and_logged_once(tmp_path, caplog):
    store = _TinyStore(tmp_path / "full.db")
    # A store passed in has no spool unless given one: what the store refuses is dropped and counted.
    with (
        caplog.at_level(logging.DEBUG, logger=LOGGER),
        UsageLedger(store, durability="buffered", flush_interval=0.01, retry_interval=0.001) as ledger,
    ):
        for rec in records(5):
            ledger.record(rec)
        ledger.flush()
        assert ledger.written == 5
        for _ in range(3):
            for rec in records(500, session_id="x" * 200):
                ledger.record(rec)
            ledger.flush()
        assert ledger.errors == 3
        assert ledger.dropped == 1500
        assert ledger.totals(None)[0].requests == ledger.written  # what was written stays queryable
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "full" in warnings[0].getMessage()
    assert "xxxx" not in warnings[0].getMessage()
    store.close()


def test_read_only_database(tmp_path, caplog):
    SQLiteUsageStore(tmp_path / "ro.db").close()
    store = _ReadOnlyStore(tmp_path / "ro.db", create=False)
    with caplog.at_level(logging.WARNING, logger=LOGGER), UsageLedger(store) as ledger:
        ledger.record(UsageRecord())
        assert ledger.flush(timeout=5)
        assert (ledger.errors, ledger.dropped, ledger.written) == (1, 1, 0)
    assert len(caplog.records) == 1
    store.close()


def test_database_locked_beyond_busy_timeout(tmp_path, caplog):
    path = tmp_path / "locked.db"
    store = SQLiteUsageStore(path, busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER), UsageLedger(store) as ledger:
            ledger.record(UsageRecord())
            assert ledger.flush(timeout=5)
            assert (ledger.errors, ledger.dropped) == (1, 1)
            other.execute("ROLLBACK")
            ledger.record(UsageRecord())  # the lock is gone: writing resumes
            ledger.flush()
            assert ledger.written == 1
    finally:
        other.close()
        store.close()
    assert len(caplog.records) == 1
    assert "locked" in caplog.records[0].getMessage()


class _ExplodingStore(MemoryUsageStore):
    def write_many(self, records):
        raise RuntimeError(f"secret contents {records[0].user}")


def test_arbitrary_store_errors_are_logged_without_their_message(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER), UsageLedger(_ExplodingStore()) as ledger:
        ledger.record(UsageRecord(user="app_secret"))
        ledger.flush()
    assert (ledger.errors, ledger.dropped) == (1, 1)
    assert "RuntimeError" in caplog.text
    assert "secret" not in caplog.text


def test_full_queue_drops_and_counts(caplog):
    gate = threading.Event()

    class SlowStore(MemoryUsageStore):
        def write_many(self, records):
            gate.wait(5)
            super().write_many(records)

    with caplog.at_level(logging.WARNING, logger=LOGGER), UsageLedger(SlowStore(), max_queue=10) as ledger:
        for rec in records(30):
            ledger.record(rec)
        assert ledger.dropped >= 10  # at most 10 queued and one batch in flight
        gate.set()
    assert ledger.written + ledger.dropped == 30
    assert ledger.errors == 0
    assert "queue full" in caplog.text


def test_invalid_record_is_dropped_not_raised(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER), UsageLedger(MemoryUsageStore()) as ledger:
        ledger.record({"user": "a"})  # type: ignore[arg-type]
        ledger.record(UsageRecord(user="b"))
        ledger.flush()
        assert (ledger.written, ledger.dropped) == (1, 1)
    assert "not a UsageRecord (dict)" in caplog.text


def test_flush_times_out_while_the_store_is_stuck():
    gate = threading.Event()

    class StuckStore(MemoryUsageStore):
        def write_many(self, records):
            gate.wait(5)
            super().write_many(records)

    with UsageLedger(StuckStore()) as ledger:
        ledger.record(UsageRecord())
        assert ledger.flush(timeout=0.05) is False
        gate.set()
        assert ledger.flush(timeout=5) is True
