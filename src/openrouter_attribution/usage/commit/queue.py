"""The commit queue: the records handed to a ledger's writer and not handled yet, under its one lock.

Each record queued gets the next sequence number (:attr:`CommitQueue.queued`); a record is handled once
it is committed, spooled or dropped, and :attr:`CommitQueue.processed` counts those, in order. Whoever
commits, a caller leading a group commit (:mod:`~openrouter_attribution.usage.commit.group_commit`) or
the writer thread (:mod:`~openrouter_attribution.usage.commit.drain`), takes a batch from the left with
:meth:`CommitQueue.claim` and reports it with :meth:`CommitQueue.handled`, which empties the journal that
far and wakes whoever waits: threads in :meth:`CommitQueue.wait`, event loops' futures from
:meth:`CommitQueue.watch`, the writer thread when its next batch is due (:meth:`CommitQueue.due`).

Lock discipline: :attr:`CommitQueue.lock` guards every attribute here, and every method expects its caller
to hold it, except :meth:`CommitQueue.handled`, which takes it. The one access without it is a buffered
ledger's append of one record to :attr:`CommitQueue.records` while it holds fewer than
:attr:`CommitQueue.room` (see :meth:`UsageLedger.record`): a single append needs no lock, and batches are
only ever taken from the left under the lock. The lock is also held across ``fork()``
(:mod:`~openrouter_attribution.usage.commit.forks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from enum import Enum

from openrouter_attribution.usage.commit import forks
from openrouter_attribution.usage.commit.failures import error_text
from openrouter_attribution.usage.commit.journal import Journal
from openrouter_attribution.usage.records import UsageRecord

__all__ = ["BATCH", "CommitQueue", "Handed"]

logger = logging.getLogger("openrouter_attribution.usage")

BATCH = 2000
"""Records committed in one transaction at most."""


class Handed(Enum):
    """What became of records handed to the writer by :meth:`Writer.journal_write` or :meth:`GroupCommit.commit`."""

    TAKEN = "taken"
    """The writer has them: in the journal, or committed (or spooled by the writer thread)."""
    BACK = "back"
    """Handed back: the journal failed (the caller commits them) or the commit timed out (the caller spools
    them)."""
    REFUSED = "refused"
    """Refused: the writer is closed or its queue is full (the caller counts them dropped)."""


def _resolve(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class CommitQueue:
    """Records waiting to be committed, their sequence numbers, and who waits for them."""

    def __init__(
        self,
        *,
        name: str,
        durable: bool,
        inline: bool,
        max_queue: int,
        commit_timeout: float,
        journal: Journal | None,
        commit_interval: float,
    ) -> None:
        self.name = name
        self.durable = durable
        self.max_queue = max_queue
        self.commit_timeout = commit_timeout
        self.journal = journal
        self.commit_interval = commit_interval
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)
        """Wakes the writer thread (a batch is due, a flush asked for, the ledger closed)."""
        self.done = threading.Condition(self.lock)
        """Wakes threads waiting for records to be handled (followers of a group commit, :meth:`wait`)."""
        self.records: deque[UsageRecord] = deque()
        """The records waiting, oldest first."""
        self.room = min(max_queue, BATCH)
        """Records :attr:`records` may hold before an append must go through :meth:`Writer.buffer` (which
        refuses beyond ``max_queue`` and wakes the writer thread at ``BATCH``)."""
        self.processed = 0
        """Records handled (committed, spooled or dropped), in queue order."""
        self.inflight = 0
        """Records taken from the queue and not yet handled (the batch being committed)."""
        self.written = self.spooled = 0
        self.flush_to = 0
        """Everything up to this sequence number is to be committed now (:meth:`request_flush`)."""
        self.committing = False
        """A batch taken from the queue is being written (by a leader or the writer thread)."""
        self.inline = inline
        """Callers may lead commits when the store answers (durable, and the store commits within a time)."""
        self.inline_ok = inline
        """Callers may lead commits now (cleared when one fails, set again when the writer thread wrote)."""
        self.followers = 0
        """Callers waiting in :meth:`GroupCommit.commit` (any of them may lead the next commit)."""
        self.sleepers = 0
        """Threads waiting on :attr:`done` (followers and :meth:`wait`): nobody to notify when 0."""
        self.kick = False
        """The writer thread is to commit what is queued (nobody else will)."""
        self.first_at = 0.0
        """When the oldest journaled record still queued was queued (monotonic seconds)."""
        self.closed = False
        self.stopped = False
        """The writer thread has stopped."""
        self.fork = forks.generation
        self._waiters: deque[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[bool]]] = deque()
        forks.hold_across_fork(self)

    @property
    def queued(self) -> int:
        """Records queued so far, the sequence number of the last one: those handled, those being
        committed and those waiting."""
        return self.processed + self.inflight + len(self.records)

    def live(self) -> bool:
        """False in a forked child (the writer thread exists only in the parent) and after it stopped."""
        return self.fork == forks.generation and not self.stopped

    def enqueue(self, records: Sequence[UsageRecord]) -> int | None:
        """Queue records; returns the sequence number of the last, or ``None`` (closed, full)."""
        if self.closed or len(self.records) + len(records) > self.max_queue:
            return None
        self.records.extend(records)
        return self.queued

    def wake(self) -> None:
        """Ask the writer thread to commit what is queued."""
        self.kick = True
        self.work.notify()

    def request_flush(self) -> int:
        """Ask the writer thread to write everything queued now; returns the target."""
        self.flush_to = self.queued
        self.work.notify()
        return self.queued

    def due(self) -> bool:
        """Whether the writer thread is to take a batch now."""
        if not self.records or self.committing:
            return False
        if self.closed or self.flush_to > self.processed:
            return True
        if self.durable:
            return self.kick or not self.inline_ok or self.journal_due()
        return len(self.records) >= BATCH

    def journal_due(self) -> bool:
        """The oldest journaled record has waited ``commit_interval``."""
        return self.journal is not None and time.monotonic() >= self.first_at + self.commit_interval

    def claim(self) -> list[UsageRecord]:
        """Take the next batch to commit from the left of the queue. Buffered callers may append to its
        right meanwhile: the batch is counted, then taken, one record at a time."""
        self.committing = True
        records = self.records
        n = min(len(records), BATCH)
        self.inflight += n
        if n == len(records):
            self.kick = False
        return [records.popleft() for _ in range(n)]

    def put_back(self, batch: list[UsageRecord]) -> None:
        """A claimed batch that was not committed: back to the front of the queue, in order."""
        self.records.extendleft(reversed(batch))
        self.inflight -= len(batch)
        self.committing = False

    def handled(self, n: int, *, written: int = 0, spooled: int = 0) -> None:
        """The claimed batch is handled (takes the lock; see :meth:`handled_locked`)."""
        with self.lock:
            self.handled_locked(n, written=written, spooled=spooled)

    def handled_locked(self, n: int, *, written: int = 0, spooled: int = 0) -> None:
        """The claimed batch of ``n`` records is handled: count it, empty the journal that far, wake whoever
        waits for it, and the writer thread when its next batch is due."""
        self.processed += n
        self.inflight -= n
        self.written += written
        self.spooled += spooled
        self.committing = False
        if self.journal is not None:
            try:
                self.journal.release(self.processed)
            except OSError as err:  # the records are in the store: a journal left behind only repeats them
                logger.debug("usage ledger %s: could not empty the journal (%s)", self.name, error_text(err))
        if self.sleepers:
            self.done.notify_all()
        while self._waiters and self._waiters[0][0] <= self.processed:
            _, loop, fut = self._waiters.popleft()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, fut, True)
        if self.closed or (self.records and self.due()):
            self.work.notify()

    def wait(self, seq: int, timeout: float | None) -> bool:
        """Wait until record ``seq`` is handled (committed or spooled)."""
        self.sleepers += 1
        try:
            return self.done.wait_for(lambda: self.processed >= seq, timeout)
        finally:
            self.sleepers -= 1

    def watch(self, seq: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[bool]:
        """A future that becomes True once ``seq`` is handled, False after ``commit_timeout``."""
        fut: asyncio.Future[bool] = loop.create_future()
        if self.processed >= seq:
            fut.set_result(True)
            return fut
        self._waiters.append((seq, loop, fut))
        handle = loop.call_later(self.commit_timeout, _resolve, fut, False)
        fut.add_done_callback(lambda _: handle.cancel())
        return fut

    def __repr__(self) -> str:
        return f"CommitQueue({self.name!r}, queued={self.queued}, processed={self.processed})"
