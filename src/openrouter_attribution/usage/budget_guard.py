"""The budget step of a model call: reserve before any network I/O, settle when the call ends.

:class:`BudgetGuard` is built once per model (``budget=`` with ``ledger=``). Its :meth:`~BudgetGuard.reserve`
returns a :class:`Hold`, a context manager wrapped around the call: the call's usage record is set on
it, and on exit the reservation settles to that record (or is released). Calls that are not budgeted
get the model's no-op hold instead. See :mod:`openrouter_attribution.usage.budget` for the rules.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from openrouter_attribution.errors import BudgetExceededError, ConfigurationError, MissingUserError
from openrouter_attribution.usage.budget import BudgetCheck, Reservation, UserBudget, billing_for, window
from openrouter_attribution.usage.records import UsageRecord, format_cost

__all__ = ["BudgetGuard", "Estimate", "Hold"]

logger = logging.getLogger("openrouter_attribution.usage")

_UTC = timezone.utc
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


class BudgetGuard:
    """The budget step of one model: reserve before a call, settle after (built by the model's options).

    Raises:
        ConfigurationError: the ledger's store cannot enforce budgets (a memory or custom store).
    """

    __slots__ = ("_windows", "backend", "budget")

    def __init__(self, budget: UserBudget, ledger: Any) -> None:
        if not isinstance(budget, UserBudget):
            raise ConfigurationError(f"budget must be a UserBudget, not {type(budget).__name__}")
        store = getattr(ledger, "store", None)
        backend = billing_for(store) if store is not None else None
        if backend is None:
            raise ConfigurationError(
                f"budget= needs a ledger whose store can hold reservations atomically (SQLite or PostgreSQL); "
                f"{type(store).__name__} cannot. Use UsageLedger('usage.db') or UsageLedger('postgresql://...')."
            )
        self.budget = budget
        self.backend = backend
        self._windows: dict[str, tuple[float, float | None]] = {}

    def reserve(self, user: str | None, estimate: Estimate) -> Hold | None:
        """Reserve this call's share of ``user``'s budget; ``None`` when the call is not budgeted.

        Args:
            user: The user id as it will be sent (after the identity policy).
            estimate: Prices the call when the budget has no fixed ``reserve`` (may do network I/O
                for the model's pricing; never sends the request itself).

        Raises:
            BudgetExceededError: a limit would be exceeded; nothing is reserved.
            MissingUserError: no user and ``unattributed="refuse"``.
        """
        planned = self._plan(user, estimate)
        if planned is None:
            return None
        request, budget = planned
        return self._granted(request, budget, self.backend.budget_reserve(request))

    async def areserve(self, user: str | None, estimate: Estimate) -> Hold | None:
        """Async :meth:`reserve`: the store is called on a worker thread, the event loop keeps running."""
        planned = self._plan(user, estimate)
        if planned is None:
            return None
        request, budget = planned
        return self._granted(request, budget, await asyncio.to_thread(self.backend.budget_reserve, request))

    def prices_needed(self, user: str | None) -> bool:
        """Whether a call of ``user`` is held at its priced ceiling (a cost limit without a fixed reserve)."""
        budget = self.budget.for_user(user) if user is not None else self.budget
        return budget.max_cost is not None and budget.reserve is None

    def _plan(self, user: str | None, estimate: Estimate) -> tuple[Reservation, UserBudget] | None:
        budget = self.budget
        if user is None:
            if budget.unattributed == "allow":
                return None
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
        request = Reservation(id=new_reservation_id(), user=user, amount=amount, since=since, now=now,
                              expires_at=now + budget.reservation_ttl, max_cost=budget.max_cost,
                              max_requests=budget.max_requests)  # fmt: skip
        return request, budget

    def _granted(self, request: Reservation, budget: UserBudget, check: BudgetCheck) -> Hold:
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
            what = (f"spent {format_cost(check.spent)} USD, calls in flight hold {format_cost(check.reserved)} "
                    f"USD and this call would hold {format_cost(request.amount)} USD, over the limit of {limit} USD")
        who = "the shared unattributed budget" if request.user is None else f"user {request.user!r}"
        when = "never resets (period 'total')" if resets_at is None else f"resets {resets_at.isoformat()}"
        message = (f"Budget exceeded for {who}: {what} this {budget.period} ({when}); the call was not sent. "
                   "Raise the limit (UserBudget(limits=...)) or wait for the window to reset.")  # fmt: skip
        raise BudgetExceededError(message, user=request.user, limit=limit, spent=spent, reserved=reserved,
                                  requested=asked, kind=kind, period=budget.period, resets_at=resets_at)  # fmt: skip


class Hold:
    """A granted reservation; a context manager that settles it on exit.

    Set :attr:`record` to the call's usage record before the block ends: the reservation then counts
    until that record is in the store. Without a record it is released. Settling never raises: a
    store that is down leaves the reservation to expire after ``reservation_ttl``.
    """

    __slots__ = ("_backend", "record", "reservation")

    def __init__(self, backend: Any, reservation: Reservation) -> None:
        self._backend = backend
        self.reservation = reservation
        """The reservation held."""
        self.record: UsageRecord | None = None
        """The usage record the reservation settles to."""

    @property
    def id(self) -> str:
        """The reservation id."""
        return self.reservation.id

    def settle(self) -> None:
        """Settle to :attr:`record` (or release); never raises."""
        record_id = None if self.record is None else self.record.record_id
        try:
            self._backend.budget_settle(self.reservation, record_id)
        except Exception as err:  # settling runs in a model call's cleanup: it must never raise
            logger.warning("budget: could not settle a reservation (%s); it expires on its own", type(err).__name__)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.settle()

    async def __aenter__(self) -> Hold:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.settle()  # queues the settle (applied with the next reserve step): nothing blocks the loop

