"""Group commit: callers that may block commit their records on their own thread, many at once.

In committed mode (or durable without a journal) a caller that may block (not on an event loop) queues
its records and, finding no commit in progress, becomes the leader: it takes everything queued and
commits it on its own thread, in one transaction; callers arriving meanwhile wait as followers, and when
the leader is done one of them leads the next commit with everything queued by then. A lone caller thus
commits without handing its record to another thread and back, and many threads finishing calls
together still share commits.

The leader's commit is bounded: the store's ``write_within`` gives up after the caller's remaining
``commit_timeout`` (a lock held elsewhere, a slow server) and never connects; then the batch goes back to
the queue for the writer thread and inline commits stop (:attr:`CommitQueue.inline_ok`) until the writer
thread has written again. A caller whose records are not handled within ``commit_timeout`` gets them
back to spool them itself (:meth:`Fallback.spool_late`); they stay queued and are still committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from openrouter_attribution.usage.commit.failures import error_text
from openrouter_attribution.usage.commit.queue import CommitQueue, Handed
from openrouter_attribution.usage.commit.spool import Spool
from openrouter_attribution.usage.records import UsageRecord

__all__ = ["GroupCommit", "InlineStore"]

logger = logging.getLogger("openrouter_attribution.usage")


class InlineStore(Protocol):
    """A store that can commit on the caller's thread within a time limit (SQLite, PostgreSQL)."""

    def write_within(self, records: Sequence[UsageRecord], timeout: float) -> bool:
        """Commit ``records`` as :meth:`UsageStore.write_many` does, giving up after about ``timeout``
        seconds (a lock held elsewhere, a slow server) and without ever connecting; True once committed,
        False when not (or not known to be) committed. May raise like ``write_many``."""
        ...


class GroupCommit:
    """Leader/follower commits on callers' threads, over the writer's :class:`CommitQueue`."""

    def __init__(self, queue: CommitQueue, store: InlineStore | None, *, spool: Spool | None) -> None:
        self._queue = queue
        self._store = store
        """Commits a leader's batch; ``None``: callers never lead, they wait for the writer thread."""
        self._spool = spool

    def commit(self, records: Sequence[UsageRecord]) -> Handed:
        """Queue ``records`` and lead or follow commits until they are handled (``TAKEN``: committed, or
        spooled by the writer thread) or ``commit_timeout`` has passed (``BACK``: the caller spools them).
        ``REFUSED`` when closed or the queue is full."""
        q = self._queue
        with q.lock:
            if q.enqueue(records) is None:
                return Handed.REFUSED
            seq = q.queued
            if not q.live():  # nobody may use the store here
                return Handed.BACK
            deadline = time.monotonic() + q.commit_timeout
            if not q.inline_ok:
                q.wake()
            try:
                while q.processed < seq:
                    if q.inline_ok and not q.committing and not q.closed:
                        self._lead(deadline)
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        q.wake()  # its records stay queued: someone must still commit them
                        return Handed.BACK
                    q.followers += 1
                    q.sleepers += 1
                    try:
                        q.done.wait(left)
                    finally:
                        q.followers -= 1
                        q.sleepers -= 1
            except BaseException:  # interrupted while waiting: leave the queued records to the writer thread
                q.wake()
                raise
            return Handed.TAKEN

    def _lead(self, deadline: float) -> None:
        """Commit what is queued on this thread (caller holds the lock, released during the write)."""
        assert self._store is not None
        q = self._queue
        batch = q.claim()
        q.lock.release()
        try:
            done = self._store.write_within(batch, max(deadline - time.monotonic(), 0.0))
        except Exception as err:  # the writer thread retries the batch and logs what persists
            logger.debug("usage ledger %s: inline commit failed (%s)", q.name, error_text(err))
            done = False
        except BaseException:  # interrupted (KeyboardInterrupt): the writer thread takes over the batch
            done = False
            raise
        finally:
            q.lock.acquire()
            if not done:
                q.put_back(batch)  # the writer thread writes (or spools) them in order
                q.inline_ok = False
                q.wake()
        if done:
            q.handled_locked(len(batch), written=len(batch))
            pending = self._spool is not None and self._spool.pending > 0
            if (q.records and not q.followers) or pending:
                q.wake()  # records nobody waits to lead, or a spool to replay now the store answers
