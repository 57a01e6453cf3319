"""The usage ledger: records every model call off the caller's thread.

``record()`` appends to an in-memory queue and returns; one daemon thread
drains the queue in batches, one transaction per batch. Storage trouble never
reaches the model call: it is logged once per kind on the
``openrouter_attribution.usage`` logger and counted in :attr:`UsageLedger.errors`
and :attr:`UsageLedger.dropped`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from typing import IO

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage import export, queries
from openrouter_attribution.usage.queries import TimeBound
from openrouter_attribution.usage.records import TotalsBy, UsageRecord, UsageStoreError, UsageTotals
from openrouter_attribution.usage.sqlite import SQLiteUsageStore
from openrouter_attribution.usage.storage import UsageStore

__all__ = ["UsageLedger"]

logger = logging.getLogger("openrouter_attribution.usage")

_BATCH = 2000


def _error_kind(err: BaseException) -> str:
    if isinstance(err, sqlite3.Error):
        # Python 3.11+ names the SQLite result code (SQLITE_FULL, SQLITE_BUSY, SQLITE_READONLY, ...).
        return str(getattr(err, "sqlite_errorname", None) or type(err).__name__)
    if isinstance(err, OSError) and err.errno is not None:
        return type(err).__name__ + f"[errno {err.errno}]"
    return type(err).__name__


def _error_text(err: BaseException) -> str:
    # SQLite and OS messages never contain bound values; other exceptions might, so only their type is logged.
    if isinstance(err, (sqlite3.Error, OSError, UsageStoreError)):
        return f"{type(err).__name__}: {err}"
    return type(err).__name__


class UsageLedger:
    """A thread-safe, non-blocking ledger of model calls per end-user.

    Share one ledger among all models of a process. ``record()`` costs about a
    microsecond, never blocks on I/O and never raises. Queries (``totals``,
    ``top_users``, ``records``, exports) first :meth:`flush`.

    A location that cannot be opened (missing permissions, a parent that is a
    file, a corrupt file) does not raise here: the failure is logged and
    counted in :attr:`errors`, later records are dropped and counted in
    :attr:`dropped`, and queries raise :class:`UsageStoreError`. Check
    ``ledger.errors`` after construction when a silent loss is unacceptable.

    Args:
        path: A SQLite file (created with its parent directories) or any :class:`UsageStore`.
            A store passed in stays open after :meth:`close`; a file the ledger opened is closed.
        flush_interval: Seconds the writer waits to gather a batch.
        max_queue: Records held in memory at most; beyond it new records are dropped and counted.

    Raises:
        ConfigurationError: ``flush_interval`` or ``max_queue`` is not positive.

    Example:
        >>> with UsageLedger(":memory:") as ledger:
        ...     ledger.record(UsageRecord(user="app_1", prompt_tokens=10, cost=Decimal("0.0002")))
        ...     ledger.record(UsageRecord(user="app_1", prompt_tokens=5, cost=Decimal("0.0001")))
        ...     [(t.key, t.requests, t.cost) for t in ledger.totals(by="user")]
        [('app_1', 2, Decimal('0.0003'))]
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | UsageStore,
        *,
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
    ) -> None:
        if not flush_interval > 0:
            raise ConfigurationError(f"flush_interval must be > 0 seconds, got {flush_interval!r}")
        if max_queue < 1:
            raise ConfigurationError(f"max_queue must be >= 1, got {max_queue!r}")
        self._flush_interval = float(flush_interval)
        self._max_queue = max_queue
        self._cond = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._buffer: deque[UsageRecord] = deque()
        self._queued = self._processed = 0
        self._written = self._dropped = self._errors = 0
        self._logged: set[str] = set()
        self._closed = False
        self._open_error: BaseException | None = None
        self._store: UsageStore | None
        if isinstance(path, (str, os.PathLike)):
            self._path: str = os.fspath(path)
            self._owns_store = True
            try:
                self._store = SQLiteUsageStore(self._path)
            except Exception as err:  # any failure to open must not break the application
                self._store = None
                self._open_error = err
                self._fail("open", err, dropped=0)
        else:
            self._store = path
            self._path = str(getattr(path, "path", repr(path)))
            self._owns_store = False
        self._thread = threading.Thread(target=self._run, name="openrouter-usage-writer", daemon=True)
        if self._store is not None:
            self._thread.start()
        atexit.register(self.close)

    # -- counters ---------------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The ledger's location (the store's ``path``, or its repr)."""
        return self._path

    @property
    def written(self) -> int:
        """Records handed to the store in committed batches (a re-written ``record_id`` counts again)."""
        return self._written

    @property
    def dropped(self) -> int:
        """Records lost: storage errors, a full queue, an unopenable location, or recorded after close."""
        return self._dropped

    @property
    def errors(self) -> int:
        """Storage failures: failed opens and failed batch writes."""
        return self._errors

    @property
    def pending(self) -> int:
        """Records queued but not yet written."""
        return len(self._buffer)

    # -- writing ----------------------------------------------------------------------------------------

    def record(self, rec: UsageRecord) -> None:
        """Queue one record for writing; cheap, non-blocking, never raises."""
        try:
            if not isinstance(rec, UsageRecord):
                reason = f"record dropped: not a UsageRecord ({type(rec).__name__})"
                self._note("invalid", reason, dropped=1, error=False)
                return
            with self._cond:
                if not self._closed and self._store is not None and len(self._buffer) < self._max_queue:
                    self._buffer.append(rec)
                    self._queued += 1
                    if len(self._buffer) == _BATCH:
                        self._wake.set()
                    return
                reason = "closed" if self._closed else "unavailable" if self._store is None else "queue full"
            self._note(reason, f"record dropped: ledger {reason}", dropped=1, error=False)
        except Exception as err:  # record() is called inside model calls: it must never raise
            self._fail("record", err, dropped=1)

    def _run(self) -> None:
        assert self._store is not None
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            while True:
                with self._cond:
                    if not self._buffer:
                        if self._closed:
                            return
                        break
                    n = min(len(self._buffer), _BATCH)
                    batch = [self._buffer.popleft() for _ in range(n)]
                self._write(self._store, batch)

    def _write(self, store: UsageStore, batch: list[UsageRecord]) -> None:
        try:
            store.write_many(batch)
        except Exception as err:  # storage errors are counted and logged, never raised into model calls
            self._fail("write", err, dropped=len(batch), processed=len(batch))
            return
        with self._cond:
            self._written += len(batch)
            self._processed += len(batch)
            self._cond.notify_all()

    def _fail(self, stage: str, err: BaseException, *, dropped: int, processed: int = 0) -> None:
        kind = f"{stage}:{_error_kind(err)}"
        message = f"{stage} failed ({_error_text(err)})"
        self._note(kind, message, dropped=dropped, error=True, processed=processed)

    def _note(self, kind: str, message: str, *, dropped: int, error: bool, processed: int = 0) -> None:
        with self._cond:
            self._dropped += dropped
            self._errors += error
            self._processed += processed
            first = kind not in self._logged
            self._logged.add(kind)
            self._cond.notify_all()
        level = logging.WARNING if first else logging.DEBUG
        later = "; later occurrences are logged at DEBUG level" if first else ""
        if dropped:
            logger.log(
                level, "usage ledger %s: %s; %d record(s) dropped%s", self._path, message, dropped, later
            )
        else:
            logger.log(level, "usage ledger %s: %s; records will be dropped%s", self._path, message, later)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued before this call is written (or dropped).

        Returns:
            True when done, False when ``timeout`` seconds passed first.
        """
        if threading.current_thread() is self._thread:
            return False
        with self._cond:
            target = self._queued
            self._wake.set()
            # A writer that is not running (never opened, or lost in a fork) cannot make progress.
            self._cond.wait_for(lambda: self._processed >= target or not self._thread.is_alive(), timeout)
            return self._processed >= target

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, stop the writer thread and close the store it opened; idempotent.

        Also runs at interpreter exit. Records passed to :meth:`record` afterwards are dropped.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._owns_store and self._store is not None:
            self._store.close()

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"UsageLedger({self._path!r})"

    # -- queries ----------------------------------------------------------------------------------------

    def _readable(self) -> UsageStore:
        if self._store is None:
            raise UsageStoreError(f"the ledger at {self._path} could not be opened") from self._open_error
        self.flush()
        return self._store

    def totals(
        self,
        by: TotalsBy | None = "user",
        *,
        since: TimeBound = None,
        until: TimeBound = None,
        user: str | None = None,
    ) -> list[UsageTotals]:
        """Usage per ``by`` group (UTC days for ``"day"``), highest cost first; see :func:`queries.totals`.

        ``since`` is inclusive and ``until`` exclusive; each accepts a ``datetime`` (naive means UTC),
        a ``date``, an ISO 8601 string or epoch seconds. ``by=None`` returns one overall row.
        """
        return queries.totals(self._readable(), by, since=since, until=until, user=user)

    def top_users(
        self, n: int = 10, *, since: TimeBound = None, until: TimeBound = None, user: str | None = None
    ) -> list[UsageTotals]:
        """The ``n`` users with the highest cost."""
        return queries.top_users(self._readable(), n, since=since, until=until, user=user)

    def records(
        self, since: TimeBound = None, until: TimeBound = None, user: str | None = None
    ) -> Iterator[UsageRecord]:
        """Matching records in time order."""
        return queries.iter_records(self._readable(), since=since, until=until, user=user)

    def export_csv(
        self,
        path_or_file: str | os.PathLike[str] | IO[str],
        *,
        since: TimeBound = None,
        until: TimeBound = None,
        user: str | None = None,
    ) -> int:
        """Write matching records as CSV (see :func:`export.export_csv`); returns the count."""
        return export.export_csv(self.records(since, until, user), path_or_file)

    def export_jsonl(
        self,
        path_or_file: str | os.PathLike[str] | IO[str],
        *,
        since: TimeBound = None,
        until: TimeBound = None,
        user: str | None = None,
    ) -> int:
        """Write matching records as JSON Lines (see :func:`export.export_jsonl`); returns the count."""
        return export.export_jsonl(self.records(since, until, user), path_or_file)
