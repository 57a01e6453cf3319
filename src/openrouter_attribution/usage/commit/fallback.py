"""The writer thread's writes: a batch to the store, or to the spool while the store fails.

A batch the store refuses goes to the spool, and the store is left alone for ``retry_interval`` seconds
(:meth:`Fallback.down`): batches in between go straight to the spool, so callers never wait on a store
that is down. Then the next batch probes it, and once it answers the spool is replayed, and so are the
journals and spools of processes that are gone (also when the ledger opens, and every few seconds).
Callers may lead commits again (:mod:`~openrouter_attribution.usage.commit.group_commit`) once the
writer thread has written and nothing waits in the spool. Records a caller gave up waiting for are
spooled by that caller (:meth:`Fallback.spool_late`); record ids keep the two copies to one row.

Only the writer thread writes and replays (a caller, once it has stopped: :meth:`Drainer.drain_late`),
so :attr:`Fallback.down_until` needs no lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from openrouter_attribution.usage.commit.failures import Failures
from openrouter_attribution.usage.commit.journal import Journal
from openrouter_attribution.usage.commit.queue import CommitQueue
from openrouter_attribution.usage.commit.spool import Spool
from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.usage.stores.protocol import UsageStore

__all__ = ["Fallback"]

logger = logging.getLogger("openrouter_attribution.usage")


class Fallback:
    """Writes claimed batches to the store or the spool, and replays the spool into the store."""

    def __init__(
        self,
        store: UsageStore,
        queue: CommitQueue,
        failures: Failures,
        *,
        spool: Spool | None,
        journal: Journal | None,
        retry_interval: float,
    ) -> None:
        self.store = store
        self.spool = spool
        self._queue = queue
        self._failures = failures
        self._journal = journal
        self._retry_interval = retry_interval
        self.down_until = 0.0
        """Until when (monotonic seconds) the store is left alone after a failure."""

    def down(self) -> bool:
        """The store failed less than ``retry_interval`` seconds ago."""
        return time.monotonic() < self.down_until

    def write(self, batch: list[UsageRecord]) -> None:
        """Write a batch claimed from the queue, and mark it handled."""
        if self.down() and self.spool is not None:
            self._to_spool(batch)
            return
        try:
            self.store.write_many(batch)
        except Exception as err:  # storage errors are counted and logged, never raised into model calls
            self.down_until = time.monotonic() + self._retry_interval
            self._failures.fail("write", err, dropped=0 if self.spool is not None else len(batch))
            if self.spool is not None:
                self._to_spool(batch)
            else:
                self._queue.handled(len(batch))
            return
        self._queue.handled(len(batch), written=len(batch))
        if self.spool is not None and (self.spool.pending or self.down_until):
            self.down_until = 0.0
            self.replay(others=True)
        self._resume_inline()

    def _resume_inline(self) -> None:
        """After the writer thread wrote: callers may lead commits again, unless records wait in the spool."""
        q = self._queue
        if q.inline and not self.down() and not (self.spool and self.spool.pending):
            with q.lock:
                q.inline_ok = True

    def _to_spool(self, batch: list[UsageRecord]) -> None:
        assert self.spool is not None
        try:
            self.spool.append(batch)
        except Exception as err:
            self._failures.fail("spool", err, dropped=len(batch))
            self._queue.handled(len(batch))
            return
        self._queue.handled(len(batch), spooled=len(batch))

    def replay(self, *, others: bool) -> None:
        """Replay this process's spool into the store and, with ``others``, what processes that are gone
        left in their spools and journals."""
        count = 0
        try:
            if self.spool is not None:
                count = self.spool.replay(self.store.write_many, others=others)
            if others and self._journal is not None:
                count += self._journal.replay_orphans(self.store.write_many)
        except Exception as err:
            self.down_until = time.monotonic() + self._retry_interval
            self._failures.fail("replay", err, dropped=0)
            return
        if count:
            logger.info("usage ledger %s: %d spooled record(s) replayed", self._queue.name, count)
        self._resume_inline()

    def spool_late(self, records: Sequence[UsageRecord]) -> None:
        """Records a caller gave up waiting for: to the spool now (they stay queued and are committed).
        Runs on the caller's thread."""
        if self.spool is None:
            timeout = self._queue.commit_timeout
            self._failures.note("slow", f"the store did not commit within {timeout} s and there is no spool; "
                                "the record stays queued", dropped=0, error=False)  # fmt: skip
            return
        try:
            self.spool.append(records)
        except Exception as err:  # never raised into a model call
            self._failures.fail("spool", err, dropped=len(records))
            return
        with self._queue.lock:
            self._queue.spooled += len(records)
