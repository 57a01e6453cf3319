"""The budget step of a model call: reserve before any network I/O, settle when the call ends.

:class:`BudgetGuard` is built once per model (``budget=`` with ``ledger=``). Its :meth:`~BudgetGuard.reserve`
returns a hold, a context manager wrapped around the call: the call's usage record is set on it, and on
exit the reservation settles to that record (or is released). Calls that are not budgeted get the
model's no-op hold instead. See :mod:`openrouter_attribution.usage.budgets.budget` for the rules.

Leases: while a user is far from their limit (room for at least twice ``UserBudget.lease`` calls in
every limit), one store write reserves ``lease`` calls for this process at once (one reservation of
``lease`` x the per-call amount, counting ``lease`` requests), and the calls draw from it without any
store I/O. The lease is released, each call it served settling to its record, when it is used up
(settled :data:`LEASE_SETTLE_AFTER` seconds later, once its calls' records are likely stored), after
:data:`LEASE_IDLE` seconds without a draw, after :data:`LEASE_AGE` seconds, or when the ledger
closes. Until then it counts in full, so the calls it already served count twice: the budget is
over-counted meanwhile, never under-counted. Near the limit the store refuses leases and every call
reserves alone, exactly; a call the store would refuse first has this process's waiting settles
applied (and its journaled records committed) and asks again. A call whose own reservation would
exceed the lease's per-call amount (a longer prompt priced higher) does not draw from it.

Lease sizes adapt (``UserBudget.lease`` to ``UserBudget.max_lease``): a lease used up within
:data:`LEASE_GROW` seconds of being taken makes the user's next lease in this process twice as large,
one that took longer half as large; a lease the store refuses (too little room for twice its size)
halves the next request too, and a user idle long enough for the lease to be released starts again
at ``UserBudget.lease``. So a busy user costs a store write about every :data:`LEASE_GROW` seconds,
and what a lease over-counts stays about that much of the user's calls.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from openrouter_attribution.errors import BudgetExceededError, ConfigurationError, MissingUserError
from openrouter_attribution.usage.budgets.budget import (
    BudgetCheck,
    QueuedSettles,
    Reservation,
    SupportsQueuedSettles,
    UserBudget,
    backend_of,
    window,
)
from openrouter_attribution.usage.records import UsageRecord, format_cost

__all__ = ["LEASE_AGE", "LEASE_IDLE", "BudgetGuard", "Estimate", "Hold", "Lease", "LeaseHold"]

logger = logging.getLogger("openrouter_attribution.usage")

_UTC = UTC
LEASE_IDLE = 1.0
"""Seconds without a draw after which a lease is released."""
LEASE_AGE = 60.0
"""Seconds a lease is drawn from at most."""
LEASE_GROW = 1.0
"""A lease used up within this many seconds makes the next one twice as large (see the module docstring)."""
LEASE_SETTLE_AFTER = 1.25
"""Seconds a used-up lease waits to be settled: the durable ledger commits its journal every second by
default, so by then the lease's records are in the store and settling it links none (see
:mod:`~openrouter_attribution.usage.budgets.settles`)."""
_ids = itertools.count()
_prefix = ("", 0)


def new_reservation_id() -> str:
    """A unique id: 16 random hex digits chosen once per process, then a counter (cheaper than 16 fresh random
    bytes per call, and as unique: a forked child picks new random digits)."""
    global _prefix
    if _prefix[1] != os.getpid():
        _prefix = (secrets.token_hex(8), os.getpid())
    return f"{_prefix[0]}{next(_ids):016x}"


Estimate = Callable[[], Decimal | None]


class _Plan(NamedTuple):
    budget: UserBudget
    amount: Decimal
    now: float
    since: float


class BudgetGuard:
    """The budget step of one model: reserve before a call, settle after (built by the model's options).

    It uses only :class:`~openrouter_attribution.usage.budgets.budget.SupportsBudgets` of the store's backend,
    and its ``settles`` where the backend has them (:class:`~openrouter_attribution.usage.budgets.budget.
    SupportsQueuedSettles`): leases need them, so without them every call reserves alone.

    Raises:
        ConfigurationError: the ledger's store cannot enforce budgets (a memory store, or a custom
            store that does not implement ``SupportsBudgets``).
    """

    __slots__ = (
        "_asking",
        "_commit_pending",
        "_leases",
        "_lock",
        "_settles",
        "_sizes",
        "_windows",
        "backend",
        "budget",
    )

    def __init__(self, budget: UserBudget, ledger: Any) -> None:
        if not isinstance(budget, UserBudget):
            raise ConfigurationError(f"budget must be a UserBudget, not {type(budget).__name__}")
        store = getattr(ledger, "store", None)
        backend = backend_of(store) if store is not None else None
        if backend is None:
            raise ConfigurationError(
                f"budget= needs a ledger whose store can hold reservations atomically (SQLite, PostgreSQL, or a "
                f"store that implements SupportsBudgets); {type(store).__name__} cannot. Use "
                "UsageLedger('usage.db') or UsageLedger('postgresql://...')."
            )
        if budget.scope != "user" and not getattr(backend, "scoped_budgets", False):
            raise ConfigurationError(
                f"UserBudget(scope={budget.scope!r}) needs an SQLite or PostgreSQL ledger (their triggers keep the "
                f"spend per metadata value); {type(store).__name__} only holds budgets per user."
            )
        if budget.alerts and not hasattr(backend, "budget_alert_claim"):
            raise ConfigurationError(
                f"UserBudget(alerts=...) needs an SQLite or PostgreSQL ledger (alerts are claimed in its "
                f"budget_alerts table, to fire once in the fleet); {type(store).__name__} has no such table."
            )
        self.budget = budget
        self.backend = backend
        self._settles: QueuedSettles | None = backend.settles if isinstance(backend, SupportsQueuedSettles) else None
        """The backend's held-back settles; ``None``: it settles at once, as far as the guard knows (no leases)."""
        self._commit_pending = getattr(ledger, "commit_pending", None)
        """Puts this process's recorded calls in the store before the store counts them."""
        self._windows: dict[str, tuple[float, float | None]] = {}
        self._leases: dict[tuple[str | None, str], Lease] = {}
        self._asking: set[tuple[str | None, str]] = set()
        self._sizes: dict[tuple[str | None, str], int] = {}
        """Slots the next lease of a user asks for, where it is not ``UserBudget.lease``."""
        self._lock = threading.Lock()

    def reserve(self, key: str | None, estimate: Estimate, *, user: str | None = None) -> Hold | LeaseHold | None:
        """Reserve this call's share of the budget of ``key``; ``None`` when the call is not budgeted.

        Args:
            key: The budget's key as sent: the user id (after the identity policy) for ``scope="user"``,
                else the call's value of the scope's metadata key; ``None``: the call has none.
            estimate: Prices the call when the budget has no fixed ``reserve`` (may do network I/O
                for the model's pricing; never sends the request itself).
            user: The call's user as sent, named by a refusal (default: ``key`` for ``scope="user"``).

        Raises:
            BudgetExceededError: a limit would be exceeded; nothing is reserved.
            MissingUserError: no key and ``unattributed="refuse"``.
        """
        plan = self._plan(key, estimate)
        if plan is None:
            return None
        drawn = self._draw(key, plan)
        if drawn is not None:
            return drawn
        request = self._request(key, plan)
        try:
            return self._granted(request, plan.budget, self._reserve_in_store(request), user)
        finally:
            self._unclaim(request, plan)  # after the lease is in place

    async def areserve(
        self, key: str | None, estimate: Estimate, *, user: str | None = None
    ) -> Hold | LeaseHold | None:
        """Async :meth:`reserve`: the store is called on a worker thread, the event loop keeps running."""
        plan = self._plan(key, estimate)
        if plan is None:
            return None
        drawn = self._draw(key, plan)
        if drawn is not None:
            return drawn
        request = self._request(key, plan)
        try:
            check = await asyncio.to_thread(self._reserve_in_store, request)
            return self._granted(request, plan.budget, check, user)
        finally:
            self._unclaim(request, plan)

    def _reserve_in_store(self, request: Reservation) -> BudgetCheck:
        # Calls of this process whose records wait in the journal still count at their reservation (never
        # less than they cost), and a used-up lease waiting to be settled counts in full. Only when that
        # refuses the call are the records committed, every settle applied, and the call asked for again,
        # now counted at what the calls cost: a lease far from the limit waits for neither.
        # A backend without a settle queue may still hold settles back (its budget_settle may return before
        # the store is written): ask it again too.
        backend = self.backend
        check = backend.budget_reserve(request)
        if not check.granted:
            committed = self._commit_pending is not None and self._commit_pending()
            if committed or self._settles is None or self._settles.pending:
                check = backend.budget_reserve(request, settle_all=True)
        return check

    def prices_needed(self, key: str | None) -> bool:
        """Whether a call of ``key`` is held at its priced ceiling (a cost limit without a fixed reserve)."""
        budget = self.budget.for_user(key) if key is not None else self.budget
        return budget.max_cost is not None and budget.reserve is None

    def _plan(self, user: str | None, estimate: Estimate) -> _Plan | None:
        budget = self.budget
        if user is None:
            if budget.unattributed == "allow":
                return None
            if budget.unattributed == "refuse" and budget.scope != "user":
                raise MissingUserError(
                    f"This call's metadata has no {budget.scope[len('metadata.') :]!r} and the model's budget by "
                    f"{budget.scope} refuses such calls (UserBudget(unattributed='refuse')). Pass metadata=... "
                    "or set it in user_context(metadata=...).",
                    searched=(),
                )
            if budget.unattributed == "refuse":
                raise MissingUserError(
                    "This call resolved no end-user id and the model's budget refuses unattributed calls "
                    "(UserBudget(unattributed='refuse')). Pass user=... or wrap the call in user_context(...).",
                    searched=(),
                )
        elif budget.limits is not None:
            budget = budget.for_user(user)
        if budget.max_cost is None and budget.max_requests is None:
            return None
        amount = Decimal(0)
        if budget.max_cost is not None:
            amount = budget.reserve if budget.reserve is not None else (estimate() or budget.fallback_reserve)
        now = self.budget.clock()
        since, reset = self._windows.get(budget.period) or (math.inf, None)
        if not (since <= now and (reset is None or now < reset)):
            since, reset = self._windows[budget.period] = window(budget.period, now)
        return _Plan(budget, amount, now, since)

    def _draw(self, user: str | None, plan: _Plan) -> LeaseHold | None:
        if plan.budget.lease < 2:
            return None
        key = (user, plan.budget.period)
        lease = self._leases.get(key)
        if lease is not None and lease.draw(plan.since, plan.amount):
            if lease.left <= 0:  # this call took its last slot: size the next one by how fast it went
                self._resize(key, plan.budget, lease.next_size(plan.budget.lease, plan.budget.lease_cap))
            return LeaseHold(self, lease)
        return None

    def _resize(self, key: tuple[str | None, str], budget: UserBudget, size: int) -> None:
        with self._lock:
            if size > budget.lease:
                self._sizes[key] = size
            else:
                self._sizes.pop(key, None)

    def _request(self, user: str | None, plan: _Plan) -> Reservation:
        budget = plan.budget
        # One lease per user and process at a time: while its slots are all out, or while another call is
        # asking the store for one, calls reserve one by one (a burst must not take a lease each).
        key = (user, budget.period)
        with self._lock:
            lease = self._leases.get(key)
            busy = key in self._asking or (lease is not None and lease.used_up(plan.since))
            slots = 1
            if budget.lease > 1 and not busy and self._settles is not None:  # a lease is released by its ticker
                self._asking.add(key)
                slots = min(max(self._sizes.get(key, budget.lease), budget.lease), budget.lease_cap)
        return Reservation(id=new_reservation_id(), user=user, amount=plan.amount, since=plan.since, now=plan.now,
                           expires_at=plan.now + budget.reservation_ttl, max_cost=budget.max_cost,
                           max_requests=budget.max_requests, slots=slots, period=budget.period,
                           scope=self.budget.scope)  # fmt: skip

    def _unclaim(self, request: Reservation, plan: _Plan) -> None:
        if request.slots > 1:
            with self._lock:
                self._asking.discard((request.user, plan.budget.period))

    def tick(self, force: bool = False) -> bool:
        """Release the leases not drawn from for :data:`LEASE_IDLE` seconds (``force``: all of them);
        returns whether any lease is left. Called by the store's settle thread."""
        with self._lock:
            leases = list(self._leases.items())
        now = time.monotonic()
        for key, lease in leases:
            if force or lease.stale(now):
                if lease.retire():
                    self.release(lease)
                with self._lock:
                    if self._leases.get(key) is lease:
                        del self._leases[key]
                        self._sizes.pop(key, None)  # idle: the user's next lease starts small again
        with self._lock:
            return bool(self._leases)

    def release(self, lease: Lease, *, used_up: bool = False) -> None:
        """Settle an ended lease (a used-up one :data:`LEASE_SETTLE_AFTER` seconds from now, when its last
        calls' records are likely stored): each call it served keeps its share until its record is stored."""
        after = time.monotonic() + LEASE_SETTLE_AFTER if used_up else 0.0
        try:
            self.backend.budget_settle(lease.reservation, lease.records, after=after)
        except Exception as err:  # settling runs in a model call's cleanup: it must never raise
            logger.warning("budget: could not release a lease (%s); it expires on its own", type(err).__name__)

    def _granted(
        self, request: Reservation, budget: UserBudget, check: BudgetCheck, user: str | None = None
    ) -> Hold | LeaseHold:
        if check.granted and check.slots > 1:
            lease = Lease(request, check.slots)
            with self._lock:
                old = self._leases.get((request.user, budget.period))
                self._leases[(request.user, budget.period)] = lease
            if old is not None and old.retire():  # replaced (another window, or priced too low): let it go
                self.release(old)
            if self._settles is not None:  # asked for by _request only then
                self._settles.watch(self.tick)
            return LeaseHold(self, lease)
        if request.slots > budget.lease:  # no room for a lease this large: ask for a smaller one next time
            self._resize((request.user, budget.period), budget, request.slots // 2)
        if check.granted:
            return Hold(self.backend, request)
        over_requests = budget.max_requests is not None and check.requests + check.in_flight + 1 > budget.max_requests
        _, reset = window(budget.period, request.now)
        resets_at = None if reset is None else datetime.fromtimestamp(reset, tz=_UTC)
        limit: Decimal | int
        spent: Decimal | int
        reserved: Decimal | int
        asked: Decimal | int
        if over_requests or budget.max_cost is None:
            assert budget.max_requests is not None
            kind, limit, spent, reserved, asked = "requests", budget.max_requests, check.requests, check.in_flight, 1
            what = f"made {spent} request(s) and {reserved} more are in flight, of {limit} allowed"
        else:
            kind, limit, spent, reserved, asked = "cost", budget.max_cost, check.spent, check.reserved, request.amount
            what = (
                f"spent {format_cost(check.spent)} USD, calls in flight hold {format_cost(check.reserved)} "
                f"USD and this call would hold {format_cost(request.amount)} USD, over the limit of {limit} USD"
            )
        scope = self.budget.scope
        if scope == "user":
            who = "the shared unattributed budget" if request.user is None else f"user {request.user!r}"
            user = request.user
        else:
            who = (f"the shared budget of calls without {scope}" if request.user is None
                   else f"{scope} {request.user!r}")  # fmt: skip
        when = "never resets (period 'total')" if resets_at is None else f"resets {resets_at.isoformat()}"
        message = (f"Budget exceeded for {who}: {what} this {budget.period} ({when}); the call was not sent. "
                   "Raise the limit (UserBudget(limits=...)) or wait for the window to reset.")  # fmt: skip
        raise BudgetExceededError(message, user=user, limit=limit, spent=spent, reserved=reserved, requested=asked,
                                  kind=kind, period=budget.period, resets_at=resets_at, scope=scope,
                                  key=request.user)  # fmt: skip


class Lease:
    """Calls of one user this process holds in the store with one reservation (see the module docstring)."""

    __slots__ = ("_lock", "emptied", "last", "left", "open", "records", "released", "reservation", "slots", "started")

    def __init__(self, reservation: Reservation, slots: int) -> None:
        self.reservation = reservation
        """The store's reservation of the whole lease (``amount`` is per call)."""
        self.slots = slots
        """Calls it holds."""
        self.left = slots - 1  # the call that took the lease holds the first slot
        self.emptied: float | None = None
        """When its last slot was drawn (monotonic seconds)."""
        self.open = 1
        self.records: list[str] = []
        self.released = False
        self.started = self.last = time.monotonic()
        self._lock = threading.Lock()

    def draw(self, since: float, amount: Decimal) -> bool:
        """Take one slot for a call of the same window that holds no more than the lease's amount per call."""
        with self._lock:
            now = time.monotonic()
            if (self.released or self.left <= 0 or since != self.reservation.since
                    or amount > self.reservation.amount or now - self.started > LEASE_AGE):  # fmt: skip
                return False
            self.left -= 1
            self.open += 1
            self.last = now
            if self.left <= 0:
                self.emptied = now
            return True

    def next_size(self, smallest: int, largest: int) -> int:
        """The size of the lease to take after this used-up one: twice its size when it was used up within
        :data:`LEASE_GROW` seconds, else half of it, within ``smallest`` and ``largest``."""
        fast = self.emptied is not None and self.emptied - self.started <= LEASE_GROW
        return min(max(self.slots * 2 if fast else self.slots // 2, smallest), largest)

    def finish(self, record_id: str | None) -> bool:
        """A call that drew from the lease ended; returns True when the lease is now to be released."""
        with self._lock:
            self.open -= 1
            if record_id is not None:
                self.records.append(record_id)
            self.last = time.monotonic()
            if self.left <= 0 and self.open == 0 and not self.released:
                self.released = True
                return True
            return False

    def used_up(self, since: float) -> bool:
        """Whether it can serve no more calls but some it served are still open (``False``: none left at all)."""
        with self._lock:
            drawable = (
                not self.released
                and self.left > 0
                and since == self.reservation.since
                and (time.monotonic() - self.started <= LEASE_AGE)
            )
            return not drawable and self.open > 0

    def stale(self, now: float) -> bool:
        """Whether no call drew from it for :data:`LEASE_IDLE` seconds, or it is older than :data:`LEASE_AGE`."""
        return now - self.last > LEASE_IDLE or now - self.started > LEASE_AGE

    def retire(self) -> bool:
        """Stop drawing from it; returns True when it is to be released now (no call open)."""
        with self._lock:
            self.left = 0
            if self.open == 0 and not self.released:
                self.released = True
                return True
            return False


class _HoldBase:
    __slots__ = ("record",)

    def __init__(self) -> None:
        self.record: UsageRecord | None = None
        """The usage record the reservation settles to (set it inside the block)."""

    def settle(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.settle()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.settle()  # queues the settle (applied with the next reserve step): nothing blocks the loop


class Hold(_HoldBase):
    """A granted reservation of one call; a context manager that settles it on exit.

    Set :attr:`record` to the call's usage record before the block ends: the reservation then counts
    until that record is in the store. Without a record it is released. Settling never raises: a
    store that is down leaves the reservation to expire after ``reservation_ttl``.
    """

    __slots__ = ("_backend", "reservation")

    def __init__(self, backend: Any, reservation: Reservation) -> None:
        super().__init__()
        self._backend = backend
        self.reservation = reservation
        """The reservation held."""

    @property
    def id(self) -> str:
        """The reservation id."""
        return self.reservation.id

    def settle(self) -> None:
        """Settle to :attr:`record` (or release); never raises."""
        records = () if self.record is None else (self.record.record_id,)
        try:
            self._backend.budget_settle(self.reservation, records)
        except Exception as err:  # settling runs in a model call's cleanup: it must never raise
            logger.warning("budget: could not settle a reservation (%s); it expires on its own", type(err).__name__)


class LeaseHold(_HoldBase):
    """A call drawn from a lease; on exit it returns its slot (the lease settles when released)."""

    __slots__ = ("_guard", "lease")

    def __init__(self, guard: BudgetGuard, lease: Lease) -> None:
        super().__init__()
        self._guard = guard
        self.lease = lease
        """The lease the call drew from."""

    @property
    def id(self) -> str:
        """The lease's reservation id."""
        return self.lease.reservation.id

    def settle(self) -> None:
        """Return the slot; the last call of a used-up lease releases it. Never raises."""
        if self.lease.finish(None if self.record is None else self.record.record_id):
            self._guard.release(self.lease, used_up=True)
