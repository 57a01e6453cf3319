"""Settles of budget reservations, gathered and applied together (group settle), and lease upkeep.

Ending a reservation is a write; writing it alone after every call would cost a commit per call. A
:class:`SettleQueue` keeps this process's ended reservations and hands them to the next reserve step
of the process, which applies them in its own transaction before it counts (so a process's calls see
their own earlier calls settled), or to a background thread after ``delay`` seconds when no reserve
step comes. Until a settle is applied its reservation keeps counting: the budget can only be
over-counted for that short while, never under-counted.

A settle can also wait on purpose (``Settle.after``): a used-up lease is released a little over a
second later, when the durable ledger's journal has put its calls' records in the store, so settling
it removes one row instead of linking one per call (a link costs an insert now and a sweep later).
The calls it served count through the lease meanwhile, as their links would have. Reserve steps and
the background thread leave such a settle alone until then; reads, closing, and a reserve step about
to refuse a call apply it at once. A failed apply keeps the settles for the next
attempt; a process that dies with settles pending leaves reservations that expire on their own.

A reserve step also sweeps away its user's reservations that no longer count (expired, or linked to
a record the store now has) when :class:`SweepClock` says so: every :data:`SWEEP_EVERY` steps, and as
soon as the process has linked :data:`SWEEP_LINKS` records since the last sweep. A linked row costs
every later reserve step of its user a look-up until it is swept, and a used-up lease links one row per
call it served (its records wait in the ledger's journal for up to ``commit_interval``).

The same thread ticks the leases of this process's budgets (see
:class:`~openrouter_attribution.usage.budgets.guard.BudgetGuard`) twice a second, so a lease that
is no longer drawn from is released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

__all__ = ["SWEEP_EVERY", "SWEEP_LINKS", "Settle", "SettleQueue", "SweepClock"]

logger = logging.getLogger("openrouter_attribution.usage")

DEFAULT_DELAY = 0.05
"""Seconds a settle waits for a reserve step before the background thread applies it."""
TICK = 0.5
"""Seconds between two ticks of the leases, while there are any."""
SWEEP_EVERY = 64
"""A process's reserve steps sweep at least this often (one in so many)."""
SWEEP_LINKS = 64
"""Records a process links to reservations before its next reserve step sweeps."""


class Settle(NamedTuple):
    """One ended reservation: it goes, and each call whose record is not stored yet keeps ``amount``."""

    user: str | None
    id: str
    records: tuple[str, ...]
    """Record ids of the calls it served (none: released)."""
    amount: Decimal
    """USD per call."""
    created_at: float
    expires_at: float
    after: float = 0.0
    """Monotonic seconds before which only a read, closing, or a refusal applies it (0: due at once)."""


class SweepClock:
    """Decides which reserve steps of one store sweep (see the module docstring).

    Not locked: two steps counted at once may sweep once too often or too seldom, never wrongly (a
    sweep only removes rows that no longer count).
    """

    __slots__ = ("_links", "_steps")

    def __init__(self) -> None:
        self._steps = 0
        self._links = 0

    def due(self, settles: list[Settle]) -> bool:
        """Count one reserve step that applies ``settles``; returns whether it sweeps (what earlier
        steps linked: the records of its own links are not stored, or they would not be linked)."""
        self._steps += 1
        sweep = self._steps % SWEEP_EVERY == 0 or self._links >= SWEEP_LINKS
        if sweep:
            self._links = 0
        self.linked(settles)
        return sweep

    def linked(self, settles: list[Settle]) -> None:
        """Count the records ``settles`` link (applied by a reserve step or the background thread)."""
        self._links += sum(len(s.records) for s in settles)


Ticker = Callable[[bool], bool]
"""Called with ``force``; releases idle (or, forced, all) leases; returns whether any lease is left."""


class SettleQueue:
    """Ended reservations of one store, waiting to be applied (thread-safe).

    Args:
        apply: Writes a batch of settles to the store in one transaction; raises on failure.
        delay: Seconds before the background thread applies what no reserve step took.
    """

    def __init__(self, apply: Callable[[list[Settle]], None], delay: float = DEFAULT_DELAY) -> None:
        self._apply = apply
        self.delay = delay
        self._pending: list[Settle] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failed = False
        self._idle = False
        self._tickers: list[Ticker] = []

    def _ensure_thread(self) -> None:
        """Start the background thread (caller holds ``_lock``), or wake it when it sleeps with nothing to do."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="openrouter-budget-settles", daemon=True)
            self._thread.start()
        elif self._idle:  # only an idle thread is woken; one that is gathering keeps its delay
            self._wake.notify()

    def add(self, settle: Settle) -> None:
        """Queue one settle."""
        with self._lock:
            self._pending.append(settle)
            self._ensure_thread()

    def watch(self, ticker: Ticker) -> None:
        """Tick ``ticker`` while it reports leases (held until then, so a lease outlives its model only
        until it is released)."""
        with self._lock:
            if ticker not in self._tickers:
                self._tickers.append(ticker)
            self._ensure_thread()

    def take(self, *, everything: bool = True) -> list[Settle]:
        """Pending settles for a reserve step to apply in its transaction: all of them, or (``everything``
        false) those that are due."""
        with self._lock:
            if everything or not any(settle.after for settle in self._pending):
                pending, self._pending = self._pending, []
            else:
                now = time.monotonic()
                pending = [settle for settle in self._pending if settle.after <= now]
                self._pending = [settle for settle in self._pending if settle.after > now]
        return pending

    def restore(self, settles: list[Settle]) -> None:
        """Put back settles a failed transaction did not apply."""
        if settles:
            with self._lock:
                self._pending[:0] = settles
                if self._idle:
                    self._wake.notify()

    def flush(self, *, everything: bool = True) -> None:
        """Apply what is pending now, in this thread (before a read of the budget, at close), or only
        what is due."""
        settles = self.take(everything=everything)
        if not settles:
            return
        try:
            self._apply(settles)
        except Exception:
            self.restore(settles)
            raise

    def close(self) -> None:
        """Release every lease, apply what is pending (best effort) and stop the background thread."""
        self._tick(force=True)
        with self._lock:
            self._closed = True
            self._wake.notify()
        try:
            self.flush()
        except Exception as err:  # at close: the reservations expire on their own
            logger.warning("budget: %d reservation(s) could not be settled at close (%s); they expire on their "
                           "own", len(self._pending), type(err).__name__)  # fmt: skip

    def _tick(self, *, force: bool = False) -> bool:
        """Tick every live ticker; returns whether any still holds a lease."""
        with self._lock:
            tickers = list(self._tickers)
        done = [ticker for ticker in tickers if not ticker(force)]
        with self._lock:
            self._tickers = [ticker for ticker in self._tickers if ticker not in done]
            return bool(self._tickers)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._idle = True
                while not self._pending and not self._tickers and not self._closed:
                    self._wake.wait()
                self._idle = False
                if self._closed:
                    return
                # Give a reserve step the chance to take the settles in its transaction; slower after a failure.
                self._wake.wait(self._sleep())
                if self._closed:
                    return
            self._tick()
            try:
                self.flush(everything=False)
                self._failed = False
            except Exception as err:  # the store is down: the reservations keep counting, conservatively
                if not self._failed:
                    logger.warning("budget: cannot settle reservations (%s); retrying", type(err).__name__)
                self._failed = True

    def _sleep(self) -> float:
        """Seconds until the background thread looks again (the caller holds ``_lock``)."""
        if not self._pending:
            return TICK
        if self._failed:
            return self.delay * 20
        due = min(settle.after for settle in self._pending) - time.monotonic()
        return max(self.delay, min(due, TICK) if due > 0 else 0.0)

    @property
    def pending(self) -> int:
        """Settles not applied yet."""
        with self._lock:
            return len(self._pending)
