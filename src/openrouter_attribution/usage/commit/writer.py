"""A ledger's writer: how ``record()`` hands records over, and the parts that take them to the store.

Durable mode with a journal (the default): a caller writes its record to the journal and queues it
(:meth:`Writer.journal_write`), and returns; the writer thread commits what is queued ``commit_interval``
seconds after the first of it arrived, in one transaction, then empties the journal. Committed mode (or
durable without a journal): a caller that may block commits on its own thread, many callers in one
transaction (:attr:`Writer.group`); one on an event loop's thread hands its records to the writer thread
and gets a future (:meth:`Writer.submit`). Buffered mode: records are only queued (:meth:`Writer.buffer`).
Reads and budgets that must see this process's records call for a flush (:meth:`Writer.flush`), or lead
a commit themselves.

The parts, each in its module beside this one:

- :class:`~.queue.CommitQueue`: the records not handled yet, their sequence numbers, who waits for them,
  and the one lock over all of it;
- :class:`~.group_commit.GroupCommit`: leader/follower commits on callers' threads;
- :class:`~.drain.Drainer`: the writer thread's loop;
- :class:`~.fallback.Fallback`: the writer thread's writes, to the store or to the spool while it fails;
- :class:`~.failures.Failures`: counts and logs what failed (nothing here raises into a model call);
- :mod:`~.forks`: what a forked child may still use.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

from openrouter_attribution.usage.commit import forks
from openrouter_attribution.usage.commit.drain import Drainer
from openrouter_attribution.usage.commit.failures import Failures
from openrouter_attribution.usage.commit.fallback import Fallback
from openrouter_attribution.usage.commit.group_commit import GroupCommit, InlineStore
from openrouter_attribution.usage.commit.journal import Journal, encode_entries
from openrouter_attribution.usage.commit.queue import BATCH, CommitQueue, Handed
from openrouter_attribution.usage.commit.spool import Spool
from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.usage.stores.protocol import UsageStore

__all__ = ["Writer"]


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
        self.name = name
        self.spool = spool
        self.journal = journal
        inline: InlineStore | None = store if getattr(store, "write_within", None) else None  # type: ignore[assignment]
        self.commit_queue = q = CommitQueue(
            name=name, durable=durable, inline=durable and inline is not None, max_queue=max_queue,
            commit_timeout=commit_timeout, journal=journal, commit_interval=commit_interval,
        )  # fmt: skip
        self.queue = q.records
        """The records waiting (see :attr:`CommitQueue.records` for the one append that needs no lock)."""
        self.room = q.room
        self.failures = Failures(q.lock, name=name, spool_folder=None if spool is None else spool.folder)
        self.fallback = Fallback(store, q, self.failures, spool=spool, journal=journal, retry_interval=retry_interval)
        self.group = GroupCommit(q, inline, spool=spool)
        self.drainer = Drainer(q, self.fallback, flush_interval=flush_interval)
        self._thread = threading.Thread(target=self.drainer.run, name="openrouter-usage-writer", daemon=True)
        self._thread.start()

    def buffer(self, records: Sequence[UsageRecord]) -> bool:
        """Buffered mode, for what a plain append to :attr:`queue` may not take (several records, a queue
        at :attr:`room`, a closed ledger): queue them for the writer thread, waking it once a batch is
        waiting; False when refused (closed, full)."""
        q = self.commit_queue
        with q.lock:
            if q.enqueue(records) is None:
                return False
            if len(q.records) >= BATCH:
                q.work.notify()
            return True

    def journal_write(self, records: Sequence[UsageRecord]) -> Handed:
        """Durable mode with a journal, from any thread: write ``records`` to the journal and queue them
        for the writer thread, which commits them within ``commit_interval``. ``TAKEN`` once written,
        ``BACK`` when the journal failed (the caller commits them instead), ``REFUSED`` (closed, full).
        Runs in every durable call: one record is copied straight into the journal file."""
        journal = self.journal
        assert journal is not None
        q = self.commit_queue
        with q.lock:
            if q.closed or len(q.records) + len(records) > q.max_queue:
                return Handed.REFUSED
            try:
                if q.fork != forks.generation or q.stopped:  # not live(), inlined: a forked child
                    journal.write_forked(encode_entries(records))  # its own file, replayed once it exits
                    q.spooled += len(records)
                    return Handed.TAKEN
                if len(records) == 1:
                    journal.write_record(records[0], q.queued + 1)
                else:
                    journal.write(encode_entries(records), q.queued + len(records))
                if not q.records:  # the first of a batch starts the commit_interval the writer thread waits
                    q.first_at = time.monotonic()
                    q.work.notify()
                q.records.extend(records)
                return Handed.TAKEN
            except OSError as err:
                failure = err
        self.failures.fail("journal", failure, dropped=0)
        return Handed.BACK

    def submit(self, records: Sequence[UsageRecord], loop: asyncio.AbstractEventLoop) -> asyncio.Future[bool] | None:
        """Durable mode, from an event loop's thread: queue ``records`` for the writer thread; the future
        becomes True once they are handled, False after ``commit_timeout``. ``None`` when refused."""
        q = self.commit_queue
        with q.lock:
            seq = q.enqueue(records)
            if seq is None:
                return None
            if not q.live():
                fut: asyncio.Future[bool] = loop.create_future()
                fut.set_result(False)
                return fut
            q.wake()
            return q.watch(seq, loop)

    def flush(self, timeout: float | None) -> bool:
        """Have everything queued now written, and wait for it; False when ``timeout`` passed first."""
        q = self.commit_queue
        with q.lock:
            target = q.request_flush()
            if not q.live():
                return q.processed >= target
            return q.wait(target, timeout)

    def on_writer_thread(self) -> bool:
        """True when called by the writer thread itself (a store calling back into the ledger)."""
        return threading.current_thread() is self._thread

    def close(self, timeout: float | None) -> None:
        """Handle what is queued, stop the thread and close this process's spool file."""
        q = self.commit_queue
        with q.lock:
            if q.closed:
                return
            q.closed = True
            q.work.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            if self.spool is not None:
                self.spool.close()
            if self.journal is not None:
                self.journal.close()

    def __repr__(self) -> str:
        q = self.commit_queue
        return f"Writer({self.name!r}, queued={q.queued}, processed={q.processed})"
