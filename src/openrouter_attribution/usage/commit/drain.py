"""What the writer thread runs: it drains the commit queue into the store, one batch at a time.

It commits everything no caller commits itself: durable records from the journal ``commit_interval``
seconds after the first of them was queued, records of async callers and of callers on event-loop
threads, buffered records every ``flush_interval`` (or at once when a batch is full), whatever nobody is
left to lead (:mod:`~openrouter_attribution.usage.commit.group_commit`), and every batch while the store
is failing. Between batches it replays the spool once the store may answer again, and looks every
:data:`SCAN_INTERVAL` seconds for the journals and spools of processes that are gone
(:mod:`~openrouter_attribution.usage.commit.fallback` writes and replays).

It waits on :attr:`CommitQueue.work` and takes batches under :attr:`CommitQueue.lock`, and writes them
without it.
"""

from __future__ import annotations

import threading
import time

from openrouter_attribution.usage.commit.fallback import Fallback
from openrouter_attribution.usage.commit.queue import CommitQueue
from openrouter_attribution.usage.records import UsageRecord

__all__ = ["SCAN_INTERVAL", "Drainer"]

SCAN_INTERVAL = 5.0
"""Seconds between two looks for the journals and spools of processes that are gone."""


class Drainer:
    """The writer thread's loop (:meth:`run`), and the last records once it has stopped (:meth:`drain_late`)."""

    def __init__(self, queue: CommitQueue, fallback: Fallback, *, flush_interval: float) -> None:
        self._queue = queue
        self._fallback = fallback
        self._spool = fallback.spool
        self._journal = queue.journal
        self._flush_interval = flush_interval
        self._next_scan = time.monotonic() + SCAN_INTERVAL
        self.opened = threading.Event()
        """Set once the writer thread has committed what processes that are gone left behind."""

    def run(self) -> None:
        """Replay what processes that are gone left, then commit batches until closed and drained."""
        try:
            self._fallback.replay(others=True)
            self.opened.set()
            while True:
                batch = self._take()
                if batch is None:
                    break
                if batch:
                    self._fallback.write(batch)
                else:
                    self._next_scan = time.monotonic() + SCAN_INTERVAL
                    self._fallback.replay(others=True)
            if self._spool is not None and self._spool.pending:
                self._fallback.replay(others=False)
        finally:
            with self._queue.lock:
                self._queue.stopped = True
            self.opened.set()
            self.drain_late()

    def _take(self) -> list[UsageRecord] | None:
        """The next batch; ``[]`` when it is time to retry the spool; ``None`` once closed and drained."""
        q = self._queue
        with q.lock:
            while True:
                if q.due():
                    return q.claim()
                if q.closed and not q.committing and not q.records:
                    return None
                now = time.monotonic()
                retry = self._spool is not None and self._spool.pending > 0
                scan = (self._spool is not None or self._journal is not None) and now >= self._next_scan
                if (retry or scan) and not self._fallback.down():
                    return []
                waits = [] if q.durable else [self._flush_interval]
                if retry:
                    waits.append(max(0.01, self._fallback.down_until - now))
                if self._journal is not None and q.records and not q.committing:
                    waits.append(max(0.001, q.first_at + q.commit_interval - now))
                if self._spool is not None or self._journal is not None:
                    waits.append(max(0.01, self._next_scan - now))
                timed_out = not q.work.wait(min(waits, default=None))
                if timed_out and q.records and not q.durable and not q.committing:
                    return q.claim()  # the flush interval has passed

    def drain_late(self) -> None:
        """Commit what buffered callers appended after the writer thread's last batch (a call racing
        :meth:`UsageLedger.close`); the writer thread does it as it stops, a caller once it has. Whoever
        is committing such a batch looks again afterwards, so a record appended meanwhile is not left."""
        q = self._queue
        while True:
            with q.lock:
                if not q.stopped or not q.records or q.committing:
                    return
                batch = q.claim()
            self._fallback.write(batch)
