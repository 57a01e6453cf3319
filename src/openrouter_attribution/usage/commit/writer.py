"""The ledger's commits: the journal, leader/follower group commit, the writer thread, the spool.

Durable mode with a journal (the default): a caller writes its record to the journal and queues it
(:meth:`Writer.journal_write`), and returns; the writer thread takes what is queued ``commit_interval``
seconds after the first of it arrived and commits it in one transaction, then empties the journal.
Reads and budgets that must see this process's records call for a flush, or lead a commit themselves.

Callers append records to one queue. In committed mode (or durable without a journal) a caller that
may block (not on an event loop) and finds no commit in progress becomes the leader: it takes
everything queued and commits it on its own thread, in one transaction; callers arriving meanwhile
wait as followers, and when the leader is done one of them leads the next commit with everything
queued by then (group commit). A lone caller thus commits without handing its record to another
thread and back, and many threads finishing calls together still share commits. The leader's commit
is bounded: the store's ``write_within`` gives up after the caller's remaining ``commit_timeout`` (a
lock held elsewhere, a slow server) and never connects; then the batch goes back to the queue for
the writer thread and inline commits stop until the writer thread has written again.

The writer thread commits everything else: records of async callers and of callers on event-loop
threads, buffered mode, whatever nobody is left to lead, every batch while the store is failing, and
spool replays. A batch the store refuses goes to the spool and the store is left alone for
``retry_interval`` seconds (batches in between go straight to the spool, so callers never wait on a
store that is down); then the next batch probes it, and once it answers the spool is replayed. A caller
whose record is not handled within ``commit_timeout`` (a store that is slow, not down) spools the
record itself and returns; the record stays queued and is still committed, and record ids keep the
two copies to one row.

Nothing here raises into a model call: failures are counted and logged once per kind.
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
from typing import Protocol

from openrouter_attribution.usage.commit import forks
from openrouter_attribution.usage.commit.failures import Failures, error_text
from openrouter_attribution.usage.commit.journal import Journal, encode_entries
from openrouter_attribution.usage.commit.spool import Spool
from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.usage.stores.protocol import UsageStore

__all__ = ["Handed", "InlineStore", "Writer"]


class Handed(Enum):
    """What became of records handed to the writer by :meth:`Writer.journal_write` or :meth:`Writer.commit`."""

    TAKEN = "taken"
    """The writer has them: in the journal, or committed (or spooled by the writer thread)."""
    BACK = "back"
    """Handed back: the journal failed (the caller commits them) or the commit timed out (the caller spools
    them)."""
    REFUSED = "refused"
    """Refused: the writer is closed or its queue is full (the caller counts them dropped)."""


logger = logging.getLogger("openrouter_attribution.usage")

BATCH = 2000
SCAN_INTERVAL = 5.0
"""Seconds between two looks for the journals and spools of processes that are gone."""


def _resolve(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class InlineStore(Protocol):
    """A store that can commit on the caller's thread within a time limit (SQLite, PostgreSQL)."""

    def write_within(self, records: Sequence[UsageRecord], timeout: float) -> bool:
        """Commit ``records`` as :meth:`UsageStore.write_many` does, giving up after about ``timeout``
        seconds (a lock held elsewhere, a slow server) and without ever connecting; True once committed,
        False when not (or not known to be) committed. May raise like ``write_many``."""
        ...


class Writer:
    """Queue, commits, writer thread and spool of one :class:`~openrouter_attribution.usage.UsageLedger`."""

    def __init__(
        self,
        store: UsageStore,
        *,
        name: str,
        durable: bool,
        commit_timeout: float,
        flush_interval: float,
        max_queue: int,
        retry_interval: float,
        spool: Spool | None,
        journal: Journal | None = None,
        commit_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.name = name
        self.durable = durable
        self.commit_timeout = commit_timeout
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.retry_interval = retry_interval
        self.spool = spool
        self.journal = journal
        self.commit_interval = commit_interval
        self.lock = threading.Lock()
        self._work = threading.Condition(self.lock)
        self._done = threading.Condition(self.lock)
        self._queue: deque[UsageRecord] = deque()
        self.queue = self._queue
        """The records waiting for the writer thread. A buffered ledger appends to it without the lock
        while it holds fewer than :attr:`room` (see :meth:`UsageLedger.record`): a single append needs
        none, and the writer thread only ever takes whole batches from the left under the lock."""
        self.room = min(max_queue, BATCH)
        """Records the queue may hold before an append must go through :meth:`buffer` (which refuses
        beyond ``max_queue`` and wakes the writer thread at ``BATCH``)."""
        self._waiters: deque[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[bool]]] = deque()
        self.processed = 0
        self._inflight = 0
        """Records taken from the queue and not yet handled (the batch being committed)."""
        self.written = self.spooled = 0
        self._flush_to = 0
        self._down_until = 0.0
        self._closed = False
        self._inline: InlineStore | None = getattr(store, "write_within", None) and store  # type: ignore[assignment]
        self._inline_ok = durable and self._inline is not None
        """Callers may lead commits (cleared when one fails, set again when the writer thread wrote)."""
        self._committing = False
        """A batch taken from the queue is being written (by a leader or the writer thread)."""
        self._followers = 0
        """Callers waiting in :meth:`commit` (any of them may lead the next commit)."""
        self._sleepers = 0
        """Threads waiting on ``_done`` (followers and :meth:`wait`): nobody to notify when 0."""
        self._kick = False
        """The writer thread is to commit what is queued (nobody else will)."""
        self._first_at = 0.0
        """When the oldest journaled record still queued was queued (monotonic seconds)."""
        self._next_scan = time.monotonic() + SCAN_INTERVAL
        self._fork = forks.generation
        self._stopped = False
        self.opened = threading.Event()
        """Set once the writer thread has committed what processes that are gone left behind."""
        forks.hold_across_fork(self)
        self.failures = Failures(self.lock, name=name, spool_folder=None if spool is None else spool.folder)
        self.fail = self.failures.fail
        self.note = self.failures.note
        self._thread = threading.Thread(target=self._run, name="openrouter-usage-writer", daemon=True)
        self._thread.start()

    # -- callers -------------------------------------------------------------------------------------

    def enqueue(self, records: Sequence[UsageRecord]) -> int | None:
        """Queue records (caller holds ``lock``); returns the sequence number of the last, or ``None``."""
        if self._closed or len(self._queue) + len(records) > self.max_queue:
            return None
        self._queue.extend(records)
        return self.queued

    @property
    def queued(self) -> int:
        """Records queued so far, the sequence number of the last one (caller holds ``lock`` for a count
        that does not move): those handled, those being committed and those waiting."""
        return self.processed + self._inflight + len(self._queue)

    def buffer(self, records: Sequence[UsageRecord]) -> bool:
        """Buffered mode, for what a plain append to :attr:`queue` may not take (several records, a queue
        at :attr:`room`, a closed ledger): queue them for the writer thread, waking it once a batch is
        waiting; False when refused (closed, full)."""
        with self.lock:
            if self.enqueue(records) is None:
                return False
            if len(self._queue) >= BATCH:
                self._work.notify()
            return True

    def journal_write(self, records: Sequence[UsageRecord]) -> Handed:
        """Durable mode with a journal, from any thread: write ``records`` to the journal and queue them
        for the writer thread, which commits them within ``commit_interval``. ``TAKEN`` once written,
        ``BACK`` when the journal failed (the caller commits them instead), ``REFUSED`` (closed, full).
        Runs in every durable call: one record is copied straight into the journal file."""
        journal = self.journal
        assert journal is not None
        with self.lock:
            if self._closed or len(self._queue) + len(records) > self.max_queue:
                return Handed.REFUSED
            try:
                if self._fork != forks.generation or self._stopped:  # not live(), inlined: a forked child
                    journal.write_forked(encode_entries(records))  # its own file, replayed once it exits
                    self.spooled += len(records)
                    return Handed.TAKEN
                if len(records) == 1:
                    journal.write_record(records[0], self.queued + 1)
                else:
                    journal.write(encode_entries(records), self.queued + len(records))
                self._queue_journaled(records)
                return Handed.TAKEN
            except OSError as err:
                failure = err
        self.fail("journal", failure, dropped=0)
        return Handed.BACK

    def _queue_journaled(self, records: Sequence[UsageRecord]) -> None:
        """Queue records just written to the journal (caller holds ``lock``); the first of a batch starts
        the ``commit_interval`` the writer thread waits."""
        if not self._queue:
            self._first_at = time.monotonic()
            self._work.notify()
        self._queue.extend(records)

    def commit(self, records: Sequence[UsageRecord]) -> Handed:
        """Durable mode, from a thread that may block: queue ``records`` and lead or follow commits until
        they are handled (``TAKEN``: committed, or spooled by the writer thread) or ``commit_timeout`` has
        passed (``BACK``: the caller spools them). ``REFUSED`` when closed or the queue is full."""
        with self.lock:
            if self._closed or len(self._queue) + len(records) > self.max_queue:
                return Handed.REFUSED
            self._queue.extend(records)
            seq = self.queued
            if self._fork != forks.generation or self._stopped:  # not live(): nobody may use the store here
                return Handed.BACK
            deadline = time.monotonic() + self.commit_timeout
            if not self._inline_ok:
                self._wake()
            try:
                while self.processed < seq:
                    if self._inline_ok and not self._committing and not self._closed:
                        self._lead(deadline)
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._wake()  # its records stay queued: someone must still commit them
                        return Handed.BACK
                    self._followers += 1
                    self._sleepers += 1
                    try:
                        self._done.wait(left)
                    finally:
                        self._followers -= 1
                        self._sleepers -= 1
            except BaseException:  # interrupted while waiting: leave the queued records to the writer thread
                self._wake()
                raise
            return Handed.TAKEN

    def _lead(self, deadline: float) -> None:
        """Commit what is queued on this thread (caller holds ``lock``, released during the write)."""
        assert self._inline is not None
        batch = self._pop()
        self._committing = True
        self.lock.release()
        try:
            done = self._inline.write_within(batch, max(deadline - time.monotonic(), 0.0))
        except Exception as err:  # the writer thread retries the batch and logs what persists
            logger.debug("usage ledger %s: inline commit failed (%s)", self.name, error_text(err))
            done = False
        except BaseException:  # interrupted (KeyboardInterrupt): the writer thread takes over the batch
            done = False
            raise
        finally:
            self.lock.acquire()
            if not done:
                self._queue.extendleft(reversed(batch))  # the writer thread writes (or spools) them in order
                self._inflight -= len(batch)
                self._committing = False
                self._inline_ok = False
                self._wake()
        if done:
            self._handled_locked(len(batch), written=len(batch))
            pending = self.spool is not None and self.spool.pending > 0
            if (self._queue and not self._followers) or pending:
                self._wake()  # records nobody waits to lead, or a spool to replay now the store answers

    def _wake(self) -> None:
        """Ask the writer thread to commit what is queued (caller holds ``lock``)."""
        self._kick = True
        self._work.notify()

    def submit(self, records: Sequence[UsageRecord], loop: asyncio.AbstractEventLoop) -> asyncio.Future[bool] | None:
        """Durable mode, from an event loop's thread: queue ``records`` for the writer thread; the future
        becomes True once they are handled, False after ``commit_timeout``. ``None`` when refused."""
        with self.lock:
            seq = self.enqueue(records)
            if seq is None:
                return None
            if not self.live():
                fut: asyncio.Future[bool] = loop.create_future()
                fut.set_result(False)
                return fut
            self._wake()
            return self.watch(seq, loop)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def on_writer_thread(self) -> bool:
        """True when called by the writer thread itself (a store calling back into the ledger)."""
        return threading.current_thread() is self._thread

    def live(self) -> bool:
        """False in a forked child (the writer thread exists only in the parent) and after it stopped."""
        return self._fork == forks.generation and not self._stopped

    def wait(self, seq: int, timeout: float | None) -> bool:
        """Wait (caller holds ``lock``) until record ``seq`` is committed or spooled."""
        self._sleepers += 1
        try:
            return self._done.wait_for(lambda: self.processed >= seq, timeout)
        finally:
            self._sleepers -= 1

    def watch(self, seq: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[bool]:
        """A future (caller holds ``lock``) that becomes True once ``seq`` is handled, False after
        ``commit_timeout``."""
        fut: asyncio.Future[bool] = loop.create_future()
        if self.processed >= seq:
            fut.set_result(True)
            return fut
        self._waiters.append((seq, loop, fut))
        handle = loop.call_later(self.commit_timeout, _resolve, fut, False)
        fut.add_done_callback(lambda _: handle.cancel())
        return fut

    def spool_late(self, records: Sequence[UsageRecord]) -> None:
        """Records a caller gave up waiting for: to the spool now (they stay queued and are committed)."""
        if self.spool is None:
            self.note("slow", f"the store did not commit within {self.commit_timeout} s and there is no spool; "
                      "the record stays queued", dropped=0, error=False)  # fmt: skip
            return
        try:
            self.spool.append(records)
        except Exception as err:  # never raised into a model call
            self.fail("spool", err, dropped=len(records))
            return
        with self.lock:
            self.spooled += len(records)

    def request_flush(self) -> int:
        """Ask the writer to write everything queued now (caller holds ``lock``); returns the target."""
        self._flush_to = self.queued
        self._work.notify()
        return self.queued

    def close(self, timeout: float | None) -> None:
        """Handle what is queued, stop the thread and close this process's spool file."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._work.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            if self.spool is not None:
                self.spool.close()
            if self.journal is not None:
                self.journal.close()

    # -- the writer thread ---------------------------------------------------------------------------

    def _pop(self) -> list[UsageRecord]:
        """Take the next batch from the left of the queue (caller holds ``lock``). Buffered callers may
        append to its right meanwhile: the batch is counted, then taken, one record at a time."""
        queue = self._queue
        n = min(len(queue), BATCH)
        self._inflight += n
        if n == len(queue):
            self._kick = False
        return [queue.popleft() for _ in range(n)]

    def _due(self) -> bool:
        """Whether the writer thread is to take a batch now (caller holds ``lock``)."""
        if not self._queue or self._committing:
            return False
        if self._closed or self._flush_to > self.processed:
            return True
        if self.durable:
            return self._kick or not self._inline_ok or self._journal_due()
        return len(self._queue) >= BATCH

    def _journal_due(self) -> bool:
        return self.journal is not None and time.monotonic() >= self._first_at + self.commit_interval

    def _take(self) -> list[UsageRecord] | None:
        """The next batch; ``[]`` when it is time to retry the spool; ``None`` once closed and drained."""
        with self.lock:
            while True:
                if self._due():
                    return self._claim()
                if self._closed and not self._committing and not self._queue:
                    return None
                now = time.monotonic()
                retry = self.spool is not None and self.spool.pending > 0
                scan = (self.spool is not None or self.journal is not None) and now >= self._next_scan
                if (retry or scan) and not self._down():
                    return []
                waits = [] if self.durable else [self.flush_interval]
                if retry:
                    waits.append(max(0.01, self._down_until - now))
                if self.journal is not None and self._queue and not self._committing:
                    waits.append(max(0.001, self._first_at + self.commit_interval - now))
                if self.spool is not None or self.journal is not None:
                    waits.append(max(0.01, self._next_scan - now))
                timed_out = not self._work.wait(min(waits, default=None))
                if timed_out and self._queue and not self.durable and not self._committing:
                    return self._claim()  # the flush interval has passed

    def _claim(self) -> list[UsageRecord]:
        self._committing = True
        return self._pop()

    def _down(self) -> bool:
        return time.monotonic() < self._down_until

    def _run(self) -> None:
        try:
            self._replay(others=True)
            self.opened.set()
            while True:
                batch = self._take()
                if batch is None:
                    break
                if batch:
                    self._write(batch)
                else:
                    self._next_scan = time.monotonic() + SCAN_INTERVAL
                    self._replay(others=True)
            if self.spool is not None and self.spool.pending:
                self._replay(others=False)
        finally:
            with self.lock:
                self._stopped = True
            self.opened.set()
            self.drain_late()

    def drain_late(self) -> None:
        """Commit what buffered callers appended after the writer thread's last batch (a call racing
        :meth:`UsageLedger.close`); the writer thread does it as it stops, a caller once it has. Whoever
        is committing such a batch looks again afterwards, so a record appended meanwhile is not left."""
        while True:
            with self.lock:
                if not self._stopped or not self._queue or self._committing:
                    return
                batch = self._claim()
            self._write(batch)

    def _write(self, batch: list[UsageRecord]) -> None:
        if self._down() and self.spool is not None:
            self._to_spool(batch)
            return
        try:
            self.store.write_many(batch)
        except Exception as err:  # storage errors are counted and logged, never raised into model calls
            self._down_until = time.monotonic() + self.retry_interval
            self.fail("write", err, dropped=0 if self.spool is not None else len(batch))
            if self.spool is not None:
                self._to_spool(batch)
            else:
                self._handled(len(batch))
            return
        self._handled(len(batch), written=len(batch))
        if self.spool is not None and (self.spool.pending or self._down_until):
            self._down_until = 0.0
            self._replay(others=True)
        self._resume_inline()

    def _resume_inline(self) -> None:
        """After the writer thread wrote: callers may lead commits again, unless records wait in the spool."""
        if self._inline is not None and self.durable and not self._down() and not (self.spool and self.spool.pending):
            with self.lock:
                self._inline_ok = True

    def _to_spool(self, batch: list[UsageRecord]) -> None:
        assert self.spool is not None
        try:
            self.spool.append(batch)
        except Exception as err:
            self.fail("spool", err, dropped=len(batch))
            self._handled(len(batch))
            return
        self._handled(len(batch), spooled=len(batch))

    def _replay(self, *, others: bool) -> None:
        count = 0
        try:
            if self.spool is not None:
                count = self.spool.replay(self.store.write_many, others=others)
            if others and self.journal is not None:
                count += self.journal.replay_orphans(self.store.write_many)
        except Exception as err:
            self._down_until = time.monotonic() + self.retry_interval
            self.fail("replay", err, dropped=0)
            return
        if count:
            logger.info("usage ledger %s: %d spooled record(s) replayed", self.name, count)
        self._resume_inline()

    def _handled(self, n: int, *, written: int = 0, spooled: int = 0) -> None:
        with self.lock:
            self._handled_locked(n, written=written, spooled=spooled)

    def _handled_locked(self, n: int, *, written: int = 0, spooled: int = 0) -> None:
        self.processed += n
        self._inflight -= n
        self.written += written
        self.spooled += spooled
        self._committing = False
        if self.journal is not None:
            try:
                self.journal.release(self.processed)
            except OSError as err:  # the records are in the store: a journal left behind only repeats them
                logger.debug("usage ledger %s: could not empty the journal (%s)", self.name, error_text(err))
        if self._sleepers:
            self._done.notify_all()
        while self._waiters and self._waiters[0][0] <= self.processed:
            _, loop, fut = self._waiters.popleft()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, fut, True)
        if self._closed or (self._queue and self._due()):
            self._work.notify()

    def __repr__(self) -> str:
        return f"Writer({self.name!r}, queued={self.queued}, processed={self.processed})"
