"""Durable mode: a returned record is committed or spooled; a slow or down store delays nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

from openrouter_attribution.usage import MemoryUsageStore, Spool, UsageLedger, UsageRecord

ROOT = Path(__file__).resolve().parents[2]


class CountingStore(MemoryUsageStore):
    """Counts transactions; each takes ``delay`` seconds; blocks while ``gate`` is clear; fails while ``down``."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.batches = 0
        self.gate = threading.Event()
        self.gate.set()
        self.down = False

    def write_many(self, records):
        self.gate.wait(30)
        if self.down:
            raise OSError(111, "connection refused")
        time.sleep(self.delay)
        self.batches += 1
        super().write_many(records)

    def ids(self) -> set[str]:
        return {r.record_id for r in self.iter_records()}


def test_record_returns_once_committed():
    store = CountingStore(delay=0.02)
    with UsageLedger(store) as ledger:
        for i in range(5):
            ledger.record(UsageRecord(record_id=f"r{i}"))
            assert f"r{i}" in store.ids()  # committed before record() returned
        assert (ledger.written, ledger.spooled, ledger.dropped) == (5, 0, 0)


def test_concurrent_callers_share_commits():
    store = CountingStore(delay=0.02)
    with UsageLedger(store) as ledger:
        threads = [threading.Thread(target=lambda i=i: [ledger.record(UsageRecord(record_id=f"t{i}-{j}"))
                                                        for j in range(10)]) for i in range(16)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store.ids()) == 160
        assert store.batches < 160 / 2  # group commit: far fewer transactions than records


def test_a_slow_store_delays_a_call_by_commit_timeout_then_the_record_is_spooled(tmp_path):
    store = CountingStore()
    store.gate.clear()
    ledger = UsageLedger(store, durability="committed", commit_timeout=0.05, spool=tmp_path / "spool")
    started = time.perf_counter()
    ledger.record(UsageRecord(record_id="slow"))
    waited = time.perf_counter() - started
    assert ledger.spooled == 1
    assert "slow" in (Path(ledger._spool.path).read_text())  # fsynced before record() returned
    assert waited < 5  # bounded by commit_timeout, not by the stuck store
    store.gate.set()
    ledger.close()
    assert store.ids() == {"slow"}  # the writer's copy and the replay are one row


def test_a_store_that_is_down_gets_the_spool_replayed_when_it_answers(tmp_path):
    store = CountingStore()
    store.down = True
    ledger = UsageLedger(store, durability="committed", spool=tmp_path / "spool", retry_interval=0.05)
    for i in range(20):
        ledger.record(UsageRecord(record_id=f"r{i}"))
    assert ledger.spooled == 20
    assert ledger.errors >= 1
    assert store.ids() == set()
    store.down = False
    deadline = time.monotonic() + 10
    while ledger._spool.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.ids() == {f"r{i}" for i in range(20)}
    ledger.close()
    assert list((tmp_path / "spool").iterdir()) == []


def test_buffered_mode_only_queues():
    store = CountingStore()
    store.gate.clear()
    with UsageLedger(store, durability="buffered") as ledger:
        ledger.record(UsageRecord(record_id="b"))  # returns at once although the store is stuck
        assert ledger.pending == 1
        store.gate.set()
        assert ledger.flush(timeout=5)
    assert store.ids() == {"b"}


def test_buffered_threads_racing_flushes_and_close_lose_no_record_uncounted():
    store = CountingStore()
    ledger = UsageLedger(store, durability="buffered", flush_interval=0.01)
    sent = [0] * 8
    stop = threading.Event()

    def work(t: int) -> None:
        while not stop.is_set():
            ledger.record(UsageRecord(record_id=f"t{t}-{sent[t]}"))
            sent[t] += 1

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for _ in range(5):
        assert ledger.flush(timeout=10)
    ledger.close()  # while the threads still record: what comes after it is dropped, and counted
    time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    ledger._drain_late()  # what an append that raced close() does when it sees it
    assert ledger.dropped > 0
    assert len(store.ids()) == ledger.written
    assert ledger.written + ledger.dropped == sum(sent)
    assert ledger.pending == 0


def test_a_buffered_record_appended_after_the_writer_stopped_is_committed_by_its_caller():
    store = CountingStore()
    ledger = UsageLedger(store, durability="buffered")
    ledger.record(UsageRecord(record_id="before"))
    ledger.close()
    ledger._writer.queue.append(UsageRecord(record_id="late"))  # a call that read the queue before close()
    ledger._drain_late()
    assert store.ids() == {"before", "late"}
    assert (ledger.written, ledger.dropped, ledger.pending) == (2, 0, 0)


def test_a_full_buffer_refuses_and_counts_beyond_max_queue():
    store = CountingStore()
    store.gate.clear()  # the writer thread is stuck in a commit
    with UsageLedger(store, durability="buffered", max_queue=50, flush_interval=0.01) as ledger:
        for i in range(200):
            ledger.record(UsageRecord(record_id=f"r{i}"))
        assert ledger.dropped >= 100
        assert ledger.pending + ledger.dropped == 200
        store.gate.set()
    assert len(store.ids()) + ledger.dropped == 200


def test_arecord_waits_without_blocking_the_loop():
    store = CountingStore(delay=0.2)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        await ledger.arecord(UsageRecord(record_id="a"))
        assert "a" in store.ids()  # committed when arecord returned
        task.cancel()
        return ticks

    with UsageLedger(store, commit_timeout=5) as ledger:
        assert asyncio.run(main()) >= 5  # the loop kept running during the 0.2 s commit


def test_record_on_an_event_loop_thread_does_not_block_it(tmp_path):
    store = CountingStore()
    store.gate.clear()

    async def main() -> None:
        ledger.record(UsageRecord(record_id="inline"))  # e.g. a sync callback run inline by an async run
        await asyncio.sleep(0.3)  # past commit_timeout: the record is spooled in the background

    ledger = UsageLedger(store, durability="committed", commit_timeout=0.05, spool=tmp_path / "spool")
    asyncio.run(main())  # would hang here if record() waited for the stuck store
    assert ledger.spooled == 1
    store.gate.set()
    ledger.close()
    assert store.ids() == {"inline"}


_CHILD = """
import sys
from openrouter_attribution.usage import Spool, UsageRecord
spool = Spool(sys.argv[1])
spool.append([UsageRecord(record_id="child-1"), UsageRecord(record_id="child-2")])
print("spooled", flush=True)
sys.stdin.readline()  # stay alive until told
"""


def test_a_live_process_spool_is_left_alone_and_a_dead_one_replayed(tmp_path):
    folder = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert child.stdout.readline().strip() == "spooled"
        store = MemoryUsageStore()
        assert Spool(folder).replay(store.write_many, others=True) == 0  # its lock is held
        assert list(store.iter_records()) == []
        assert Spool(folder).orphan_records() == []
    finally:
        child.communicate("\n", timeout=30)
    files = sorted(folder.iterdir())
    assert [r.record_id for r in Spool(folder).orphan_records()] == ["child-1", "child-2"]  # read, not removed
    assert sorted(folder.iterdir()) == files
    store = MemoryUsageStore()
    with UsageLedger(store, spool=folder) as ledger:  # a new process opening the ledger replays it
        ledger.flush()
    assert [r.record_id for r in store.iter_records()] == ["child-1", "child-2"]
    assert list(folder.iterdir()) == []
