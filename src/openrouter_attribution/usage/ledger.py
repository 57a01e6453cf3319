"""The usage ledger: every model call's record, on disk before the call returns (or spooled).

Durable mode (the default): ``record()`` writes the record to this process's journal
(:mod:`~openrouter_attribution.usage.commit.journal`, beside the spool) and returns; the writer thread commits
the journal to the store every ``commit_interval`` seconds, many calls in one transaction. Committed
mode: ``record()`` returns once the record is committed to the store itself; calls that finish together
share one commit (group commit: the first caller commits on its own thread for every caller waiting,
see :mod:`~openrouter_attribution.usage.commit.group_commit`). In both, a store that is down or slow never fails a
call and never delays it past ``commit_timeout``: the record goes to the spool, an append-only fsynced
file replayed into the store when it answers again or when the next process opens the ledger.
Buffered mode: ``record()`` only queues; the writer thread commits every ``flush_interval``.

Storage trouble never reaches the model call: it is logged once per kind on the
``openrouter_attribution.usage`` logger and counted in :attr:`UsageLedger.errors` and
:attr:`UsageLedger.dropped`.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal

from openrouter_attribution import environment
from openrouter_attribution.errors import ConfigurationError, UsageStoreWarning
from openrouter_attribution.keywords import checked_keywords
from openrouter_attribution.usage import export, queries
from openrouter_attribution.usage.commit.journal import Journal
from openrouter_attribution.usage.commit.queue import Handed
from openrouter_attribution.usage.commit.spool import Spool
from openrouter_attribution.usage.commit.writer import Writer
from openrouter_attribution.usage.queries import TimeBound
from openrouter_attribution.usage.records import TotalsBy, UsageRecord, UsageStoreError, UsageTotals
from openrouter_attribution.usage.stores.location import parse_location
from openrouter_attribution.usage.stores.protocol import UsageStore
from openrouter_attribution.usage.stores.sqlite.store import SQLiteUsageStore

# The event loop running in this thread, or None: no exception on the common path, no Python frame.
_running_loop = asyncio._get_running_loop

if TYPE_CHECKING:
    from openrouter_attribution.usage.budgets.budget import BudgetStatus, UserBudget
    from openrouter_attribution.usage.reconcile import ReconcileSummary

logger = logging.getLogger("openrouter_attribution.usage")

__all__ = ["DEFAULT_COMMIT_TIMEOUT", "UsageLedger", "default_spool_folder", "open_store"]

DEFAULT_COMMIT_TIMEOUT = 0.25
"""Seconds a ``record()`` that commits (``"committed"``, or a durable ledger without a journal) waits
for the store before it spools the record instead."""
DEFAULT_COMMIT_INTERVAL = 1.0
"""Seconds a durable record waits in the journal, at most, before the writer thread commits it."""

Durability = Literal["durable", "committed", "buffered"]


def open_store(location: str | os.PathLike[str], *, create: bool = True, read_only: bool = False) -> UsageStore:
    """The store a location names: :class:`SQLiteUsageStore` or, for a DSN, ``PostgresUsageStore``;
    ``read_only`` opens an existing ledger that is never written nor migrated (the dashboard).

    Raises:
        ConfigurationError: the location is neither an SQLite path nor a supported DSN, its folder is
            missing, or psycopg is not installed for a DSN.
    """
    where = parse_location(location)
    if where.backend == "postgres":
        from openrouter_attribution.usage.stores.postgres.store import PostgresUsageStore

        return PostgresUsageStore(where.target, create=create, read_only=read_only)
    return SQLiteUsageStore(where.target, create=create, read_only=read_only)


def default_spool_folder(location: str | os.PathLike[str]) -> str | None:
    """Where a ledger at ``location`` spools by default; ``None`` for ``":memory:"``.

    An SQLite file ``usage.db`` spools to ``usage.db-spool/`` beside it. A PostgreSQL ledger spools to
    ``$XDG_STATE_HOME/openrouter-attribution/spool/<hash of the DSN without its password>/``
    (``~/.local/state`` when ``XDG_STATE_HOME`` is unset), the same folder for every process of the host.
    """
    where = parse_location(location)
    if where.memory:
        return None
    if where.backend == "sqlite":
        return os.path.abspath(where.target) + "-spool"
    state = environment.state_home()
    digest = hashlib.sha256(where.display.encode()).hexdigest()[:16]
    return os.path.join(state, "openrouter-attribution", "spool", digest)


def _unreachable(store: Any) -> str | None:
    """Connect now; what to warn about when the store does not answer (``None``: it answered)."""
    try:
        store.open()
    except UsageStoreError as err:
        return f"{err} (calls go on: their records wait in the journal and the spool until the store answers)"
    return None


@checked_keywords
class UsageLedger:
    """A thread-safe ledger of model calls per end-user, durable by default.

    Share one ledger among all models of a process (and one location among all processes and hosts:
    SQLite for the processes of one machine, PostgreSQL for a fleet). ``record()`` never raises.

    What each mode promises, for a call that has returned:

    - ``durability="durable"`` (default): its record is in this process's journal file (one copy into
      a memory-mapped file, no system call), and the writer thread commits it to the store within
      ``commit_interval`` seconds; reads through this ledger (totals, records, budgets, exports) see
      it at once, other processes once it is committed. It survives the process being killed
      (SIGKILL, SIGTERM, a crash): the next ledger that opens on the same spool folder, or a live one
      within seconds, commits what a dead process left. On power loss the last moments may be lost,
      as with SQLite in WAL mode with ``synchronous=NORMAL``. Without a spool folder (``":memory:"``,
      a store passed in, ``spool=False``) it commits as ``"committed"`` does.
    - ``durability="committed"``: its record is committed to the store before the call returns (or
      fsynced in the spool when the store did not commit within ``commit_timeout``); other processes
      read it at once. On power loss PostgreSQL (``synchronous_commit=on``, its default) and the spool
      keep it; SQLite (WAL, ``synchronous=NORMAL``) may lose the last commits. Choose it when another
      process must read a record the moment its call returns, when the spool folder's disk may vanish
      with a container, or for PostgreSQL's power-loss durability; it costs a call a store round trip.
    - ``durability="buffered"``: its record is queued in memory and committed within about
      ``flush_interval`` seconds; a process killed before that loses it. A batch the store refuses
      goes to the spool in every mode.

    A location that cannot be opened (missing permissions, a corrupt file) does not raise here: the
    failure is logged and counted in :attr:`errors`, later records are dropped and counted in
    :attr:`dropped`, and queries raise :class:`UsageStoreError`.

    Args:
        location: An SQLite file (its folder must exist), ``":memory:"``, a PostgreSQL DSN
            (``postgresql://user:pw@host:5432/db``, needs the ``[postgres]`` extra) or any
            :class:`UsageStore`. A store passed in stays open after :meth:`close`.
        durability: ``"durable"``, ``"committed"`` or ``"buffered"`` (see above).
        commit_timeout: Seconds a committing ``record()`` waits for the store before spooling (0.25).
        commit_interval: Seconds a durable record waits in the journal, at most, before the writer
            thread commits it (1.0): how soon other processes see it; longer intervals commit more calls
            at once, which costs each call less.
        spool: The spool folder; ``None`` picks :func:`default_spool_folder` (no spool for
            ``":memory:"`` and for stores passed in); ``False`` disables spooling (records the store
            refuses are then dropped and counted).
        flush_interval: Seconds the buffered writer waits to gather a batch.
        max_queue: Records held in memory at most; beyond it new records are dropped and counted.
        retry_interval: Seconds between attempts to reach a store that failed.

    Raises:
        ConfigurationError: a bad location (see :func:`open_store`) or option.

    Examples:
        >>> with UsageLedger(":memory:") as ledger:
        ...     ledger.record(UsageRecord(user="app_1", prompt_tokens=10, cost=Decimal("0.0002")))
        ...     ledger.record(UsageRecord(user="app_1", prompt_tokens=5, cost=Decimal("0.0001")))
        ...     [(t.key, t.requests, t.cost) for t in ledger.totals(by="user")]
        [('app_1', 2, Decimal('0.0003'))]
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | UsageStore,
        *,
        durability: Durability = "durable",
        commit_timeout: float = DEFAULT_COMMIT_TIMEOUT,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        spool: str | os.PathLike[str] | Literal[False] | None = None,
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
        retry_interval: float = 1.0,
    ) -> None:
        _check_options(durability, commit_timeout, commit_interval, flush_interval, max_queue, retry_interval)
        self._durable = durability != "buffered"
        self._open_error: BaseException | None = None
        self._owns_store = isinstance(location, (str, os.PathLike))
        store: UsageStore | None
        if isinstance(location, (str, os.PathLike)):
            where = parse_location(location)
            self._path = where.display
            spool_folder = default_spool_folder(location) if spool is None else spool
            try:
                store = open_store(location)
            except ConfigurationError:
                raise
            except Exception as err:  # any other failure to open must not break the application
                store, self._open_error = None, err
        else:
            store = location
            self._path = str(getattr(location, "path", repr(location)))
            spool_folder = spool
        if store is None:
            store = _BrokenStore(self._path, self._open_error)
        self._store = store
        self._spool = _make_spool(spool_folder, explicit=spool is not None)
        self._journal = _make_journal(self._spool) if durability == "durable" else None
        self._writer = Writer(store, name=self._path, durable=self._durable, commit_timeout=commit_timeout,
                              flush_interval=flush_interval, max_queue=max_queue, retry_interval=retry_interval,
                              spool=self._spool, journal=self._journal, commit_interval=commit_interval)  # fmt: skip
        self._failures = self._writer.failures
        if self._open_error is not None:
            self._failures.fail("open", self._open_error, dropped=0)
        elif self._owns_store and where.backend == "postgres" and (problem := _unreachable(store)):
            # Said once, at once (not in a log line at exit); stacklevel: the line that created the ledger.
            warnings.warn(problem, UsageStoreWarning, stacklevel=3)
        self._buffer = None if self._durable else self._writer.queue
        """Buffered and open: the writer's queue, which :meth:`record` appends to without a lock."""
        self._room = self._writer.room
        atexit.register(self.close)

    # -- counters ---------------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The ledger's location (a DSN with its password redacted; a store's ``path`` or repr)."""
        return self._path

    @property
    def store(self) -> UsageStore:
        """The store the ledger writes to (budgets and reconciliation work through it)."""
        return self._store

    @property
    def durability(self) -> Durability:
        """``"durable"``, ``"committed"`` or ``"buffered"`` (a durable ledger without a spool folder
        commits as ``"committed"`` does, and says so)."""
        if not self._durable:
            return "buffered"
        return "durable" if self._journal is not None else "committed"

    @property
    def journal_path(self) -> str | None:
        """This process's journal file (durable mode), once something was written to it."""
        return None if self._journal is None else self._journal.path

    @property
    def spool_folder(self) -> str | None:
        """Where records wait when the store cannot take them (``None``: no spool)."""
        return None if self._spool is None else self._spool.folder

    @property
    def written(self) -> int:
        """Records handed to the store in committed batches (a re-written ``record_id`` counts again)."""
        return self._writer.commit_queue.written

    @property
    def spooled(self) -> int:
        """Records written to the spool (the store was down or slow), or to the journal of a forked child;
        replayed into the store later."""
        return self._writer.commit_queue.spooled

    @property
    def dropped(self) -> int:
        """Records lost: a failed write without a spool, a full queue, a failed spool append, after close."""
        return self._failures.dropped

    @property
    def errors(self) -> int:
        """Storage failures: a failed open, writes, replays and spool appends."""
        return self._failures.errors

    @property
    def pending(self) -> int:
        """Records queued but not yet handled."""
        q = self._writer.commit_queue
        return q.queued - q.processed

    # -- writing ----------------------------------------------------------------------------------------

    def record(self, rec: UsageRecord) -> None:
        """Record one call; never raises.

        Durable: returns once ``rec`` is in the journal (no wait for the store). Committed: returns once
        ``rec`` is committed (or spooled after ``commit_timeout``); called on a thread that runs an event
        loop (a synchronous callback inside an async run) it does not block the loop: the record is
        queued and committed (or spooled) in the background, and async code should ``await``
        :meth:`arecord`. Buffered: only queues.
        """
        buffer = self._buffer
        if buffer is not None and type(rec) is UsageRecord and len(buffer) < self._room:
            # Buffered, in every call: one append, which needs no lock (the writer thread takes whole
            # batches from the other end). close() clears _buffer before it stops the writer thread,
            # which commits what was appended until it stops; an append that came later is committed here.
            buffer.append(rec)
            if self._buffer is None:
                self._drain_late()
        elif isinstance(rec, UsageRecord):
            self._write((rec,))
        else:
            self.record_many((rec,))

    def _drain_late(self) -> None:
        try:
            self._writer.drainer.drain_late()
        except Exception as err:  # record() is called inside model calls: it must never raise
            self._failures.fail("record", err, dropped=0)

    def record_many(self, records: Iterable[UsageRecord]) -> None:
        """Record several calls with one wait (and one commit when they fit in a batch); never raises."""
        try:
            batch = self._valid(records)
        except Exception as err:  # a failing iterable: record_many() must never raise either
            self._failures.fail("record", err, dropped=0)
            return
        if batch:
            self._write(batch)

    def _write(self, batch: Sequence[UsageRecord]) -> None:
        try:
            w = self._writer
            if not self._durable:
                queued = w.buffer(batch)
            elif self._journal is not None and (journaled := w.journal_write(batch)) is not Handed.BACK:
                queued = journaled is Handed.TAKEN
            elif (loop := _running_loop()) is None:
                done = w.group.commit(batch)
                queued = done is not Handed.REFUSED
                if done is Handed.BACK:
                    w.fallback.spool_late(batch)
            else:
                fut = w.submit(batch, loop)
                queued = fut is not None
                if fut is not None:
                    fut.add_done_callback(functools.partial(self._late, loop=loop, batch=batch))
            if not queued:
                self._refused(len(batch))
        except Exception as err:  # record() is called inside model calls: it must never raise
            self._failures.fail("record", err, dropped=0)

    async def arecord(self, rec: UsageRecord) -> None:
        """Async :meth:`record`: durable, writes the journal and returns; committed, waits for the commit
        without blocking the event loop; never raises."""
        try:
            batch = self._valid((rec,))
            if not batch:
                return
            w = self._writer
            if not self._durable:
                if not w.buffer(batch):
                    self._refused(1)
                return
            if self._journal is not None and (journaled := w.journal_write(batch)) is not Handed.BACK:
                if journaled is Handed.REFUSED:
                    self._refused(1)
                return
            fut = w.submit(batch, asyncio.get_running_loop())
            if fut is None:
                self._refused(1)
            elif not await fut:
                await asyncio.to_thread(w.fallback.spool_late, batch)
        except Exception as err:  # arecord() is awaited inside model calls: it must never raise
            self._failures.fail("record", err, dropped=0)

    def _late(
        self, fut: asyncio.Future[bool], *, loop: asyncio.AbstractEventLoop, batch: Sequence[UsageRecord]
    ) -> None:
        if not fut.cancelled() and not fut.result():
            loop.run_in_executor(None, self._writer.fallback.spool_late, batch)

    def _valid(self, records: Iterable[UsageRecord]) -> list[UsageRecord]:
        batch = []
        for rec in records:
            if isinstance(rec, UsageRecord):
                batch.append(rec)
            else:
                reason = f"record dropped: not a UsageRecord ({type(rec).__name__})"
                self._failures.note("invalid", reason, dropped=1, error=False)
        return batch

    def _refused(self, n: int) -> None:
        reason = "closed" if self._writer.commit_queue.closed else "queue full"
        self._failures.note(reason, f"record dropped: ledger {reason}", dropped=n, error=False)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued before this call is committed (or spooled, or dropped), and
        what processes that are gone left behind for this location (journals, spools) is committed.

        Returns:
            True when done, False when ``timeout`` seconds passed first.
        """
        w = self._writer
        if w.on_writer_thread():
            return False
        # What processes that are gone left in journals and spools is committed first, when the ledger opens.
        if w.commit_queue.live() and not w.drainer.opened.wait(timeout):
            return False
        return w.flush(timeout)

    def commit_pending(self) -> bool:
        """Commit what this process has recorded and the store does not have yet (durable records wait
        in the journal up to ``commit_interval``), on the calling thread when it can, waiting at most
        about ``commit_timeout``; never raises. Returns whether there was anything to commit.

        A budget calls it before it refuses a call, so that the store counts what this process's last
        calls cost rather than what they reserved.
        """
        w = self._writer
        if self.pending <= 0 or not self._durable or w.on_writer_thread():
            return False
        try:
            if _running_loop() is not None or w.group.commit(()) is not Handed.TAKEN:
                self.flush(w.commit_queue.commit_timeout)
        except Exception as err:  # called inside model calls: it must never raise
            self._failures.fail("record", err, dropped=0)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, stop the writer thread and close the store it opened; idempotent.

        Also runs at interpreter exit. Records passed to :meth:`record` afterwards are dropped.
        """
        if self._writer.commit_queue.closed:
            return
        atexit.unregister(self.close)
        self._buffer = None  # record() now goes through the writer's lock, which refuses once it is closed
        self._writer.close(timeout)
        from openrouter_attribution.usage.budgets.budget import close_backend

        close_backend(self._store)  # budget reservations of this process's last calls settle to their records
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"UsageLedger({self._path!r})"

    # -- queries ----------------------------------------------------------------------------------------

    def _readable(self) -> UsageStore:
        if self._open_error is not None:
            raise UsageStoreError(f"the ledger at {self._path} could not be opened") from self._open_error
        self.flush()
        return self._store

    def totals(
        self,
        by: TotalsBy | str | None = "user",
        *,
        since: TimeBound = None,
        until: TimeBound = None,
        user: str | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Usage per ``by`` group (UTC days for ``"day"``), highest cost first; see :func:`queries.totals`.

        ``by`` may name a metadata key (``"metadata.tenant"``: the total of each tenant); ``where``
        keeps the records equal to every filter given (``{"metadata.tenant": "acme"}``). ``since`` is
        inclusive and ``until`` exclusive; each accepts a ``datetime`` (naive means UTC), a ``date``, an
        ISO 8601 string or epoch seconds. ``by=None`` returns one overall row.
        """
        return queries.totals(self._readable(), by, since=since, until=until, user=user, where=where)

    def top_users(
        self,
        n: int = 10,
        *,
        since: TimeBound = None,
        until: TimeBound = None,
        user: str | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """The ``n`` users with the highest cost."""
        return queries.top_users(self._readable(), n, since=since, until=until, user=user, where=where)

    def records(
        self,
        since: TimeBound = None,
        until: TimeBound = None,
        user: str | None = None,
        *,
        where: Mapping[str, str] | None = None,
    ) -> Iterator[UsageRecord]:
        """Matching records in time order (``where`` as in :meth:`totals`)."""
        return queries.iter_records(self._readable(), since=since, until=until, user=user, where=where)

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

    def budget_status(self, user: str | None, budget: UserBudget | None = None) -> BudgetStatus:
        """``user``'s budget window (id as sent): spend, requests, what calls in flight hold, limits, reset.

        ``budget`` gives the period and limits (default: a UTC day, no limit); see :class:`UserBudget`.
        """
        from openrouter_attribution.usage.budgets.budget import budget_status

        return budget_status(self._readable(), user, budget)

    def reconcile(self, *, since: TimeBound = None, **options: Any) -> ReconcileSummary:
        """Fetch OpenRouter's billed cost for every record not reconciled yet (``GET /generation``).

        See :func:`~openrouter_attribution.usage.reconcile.reconcile` for ``api_key``, ``base_url``,
        ``concurrency``, ``recent``, ``retry_for``, ``retry_not_found`` and ``progress``; ``since`` takes
        the same values as :meth:`totals`. Afterwards :meth:`totals` reports billed costs where known.
        """
        from openrouter_attribution.usage.reconcile import reconcile

        return reconcile(self._readable(), since=queries.parse_time(since), **options)

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


def _check_options(
    durability: str,
    commit_timeout: float,
    commit_interval: float,
    flush_interval: float,
    max_queue: int,
    retry_interval: float,
) -> None:
    if durability not in ("durable", "committed", "buffered"):
        raise ConfigurationError(f"durability must be 'durable', 'committed' or 'buffered', got {durability!r}")
    for name, value in (("commit_timeout", commit_timeout), ("commit_interval", commit_interval),
                        ("flush_interval", flush_interval), ("retry_interval", retry_interval)):  # fmt: skip
        if not (isinstance(value, (int, float)) and value > 0):
            raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
    if max_queue < 1:
        raise ConfigurationError(f"max_queue must be >= 1, got {max_queue!r}")


class _BrokenStore:
    """Stands for a store that could not be opened: every write fails (and is spooled, when possible)."""

    def __init__(self, path: str, error: BaseException | None) -> None:
        self.path = path
        self._error = error

    def write_many(self, records: Sequence[UsageRecord]) -> None:
        raise UsageStoreError(f"the ledger at {self.path} could not be opened")

    def iter_records(
        self, since: float | None = None, until: float | None = None, user: str | None = None
    ) -> Iterator[UsageRecord]:
        raise UsageStoreError(f"the ledger at {self.path} could not be opened") from self._error

    def close(self) -> None:
        """Nothing to close."""


def _make_spool(folder: str | os.PathLike[str] | Literal[False] | None, *, explicit: bool) -> Spool | None:
    if not folder:
        return None
    try:
        return Spool(folder)
    except OSError as err:
        if explicit:
            raise ConfigurationError(f"cannot use {os.fspath(folder)!r} as the spool folder: {err}") from err
        logger.warning("usage ledger: no spool (cannot create %s: %s)", os.fspath(folder), err)
        return None


def _make_journal(spool: Spool | None) -> Journal | None:
    """The journal of a durable ledger: in the spool folder (none without one: records are committed)."""
    if spool is None:
        return None
    return Journal(spool.folder)
