"""The budgets of one model: ``budget=`` takes one :class:`UserBudget` or several (a user's and their tenant's).

:class:`BudgetGroup` is what a model's call pipeline holds. For each call it takes each budget's key from the
call's attribution as sent (the user id for ``scope="user"``, a metadata value for ``scope="metadata.<key>"``)
and reserves in every budget, in the order given, before any network I/O. A budget that refuses raises its
:class:`~openrouter_attribution.errors.BudgetExceededError` (naming its scope and key) after the reservations
already taken in the others are released: a call is sent within all its budgets or not at all. When the call
ends, every reservation settles to the call's record, and the budgets with ``alerts`` queue a check of the
key's window on the alerts thread (:mod:`~openrouter_attribution.usage.budgets.alerts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage.budgets import alerts
from openrouter_attribution.usage.budgets.budget import UserBudget
from openrouter_attribution.usage.budgets.guard import BudgetGuard, Estimate, Hold, LeaseHold

if TYPE_CHECKING:
    from openrouter_attribution.attribution import Attribution
    from openrouter_attribution.usage.records import UsageRecord

__all__ = ["BudgetGroup", "GroupHold", "key_of"]


def key_of(budget: UserBudget, attribution: Attribution) -> str | None:
    """The key of ``budget`` for a call attributed as ``attribution`` (as sent); ``None``: the call has none."""
    if budget.scope == "user":
        return attribution.user
    metadata = attribution.metadata
    return None if metadata is None else metadata.get(budget.scope[len("metadata.") :])


class BudgetGroup:
    """Every budget of one model (built by the model's options from ``budget=`` and ``ledger=``).

    Raises:
        ConfigurationError: ``budget`` is neither a :class:`UserBudget` nor a non-empty sequence of them,
            or the ledger's store cannot enforce one of them (see :class:`BudgetGuard`).
    """

    __slots__ = ("guards",)

    def __init__(self, budget: UserBudget | Sequence[UserBudget], ledger: Any) -> None:
        budgets = (budget,) if isinstance(budget, UserBudget) else budget
        if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Sequence) or not budgets:
            raise ConfigurationError(f"budget must be a UserBudget or a sequence of them, not {type(budget).__name__}")
        for one in budgets:
            if not isinstance(one, UserBudget):
                raise ConfigurationError(f"budget must be a UserBudget or a sequence of them, not {type(one).__name__}")
        self.guards = tuple(BudgetGuard(one, ledger) for one in budgets)
        """One guard per budget, in the order given (the order in which a call reserves)."""

    def prices_needed(self, attribution: Attribution) -> bool:
        """Whether a budget holds the call at its priced ceiling (so the model's prices are needed)."""
        return any(guard.prices_needed(key_of(guard.budget, attribution)) for guard in self.guards)

    def reserve(self, attribution: Attribution, estimate: Estimate) -> GroupHold | None:
        """Reserve the call in every budget; ``None`` when none budgets it.

        Raises:
            BudgetExceededError: a budget would be exceeded (the others' reservations are released).
            MissingUserError: a budget refuses calls without its key (``unattributed="refuse"``).
            UsageStoreError: the store cannot be reached (nothing is reserved, nothing is sent).
        """
        estimate = _once(estimate)
        held: list[tuple[BudgetGuard, str | None, Hold | LeaseHold]] = []
        try:
            for guard in self.guards:
                key = key_of(guard.budget, attribution)
                hold = guard.reserve(key, estimate, user=attribution.user)
                if hold is not None:
                    held.append((guard, key, hold))
        except BaseException:
            _release(held)
            raise
        return GroupHold(held) if held else None

    async def areserve(self, attribution: Attribution, estimate: Estimate) -> GroupHold | None:
        """Async :meth:`reserve` (each store step on a worker thread)."""
        estimate = _once(estimate)
        held: list[tuple[BudgetGuard, str | None, Hold | LeaseHold]] = []
        try:
            for guard in self.guards:
                key = key_of(guard.budget, attribution)
                hold = await guard.areserve(key, estimate, user=attribution.user)
                if hold is not None:
                    held.append((guard, key, hold))
        except BaseException:
            _release(held)
            raise
        return GroupHold(held) if held else None


def _once(estimate: Estimate) -> Estimate:
    """``estimate``, computed at most once for the several budgets of one call."""
    found: list[Decimal | None] = []

    def once() -> Decimal | None:
        if not found:
            found.append(estimate())
        return found[0]

    return once


def _release(held: list[tuple[BudgetGuard, str | None, Hold | LeaseHold]]) -> None:
    for _, _, hold in held:
        hold.settle()  # no record: released (settling never raises)


class GroupHold:
    """The reservations of one call in its budgets; a context manager that settles them all on exit.

    Set :attr:`record` to the call's usage record inside the block (see :class:`Hold`).
    """

    __slots__ = ("_held",)

    def __init__(self, held: list[tuple[BudgetGuard, str | None, Hold | LeaseHold]]) -> None:
        self._held = held

    @property
    def record(self) -> UsageRecord | None:
        """The usage record every reservation settles to."""
        return self._held[0][2].record

    @record.setter
    def record(self, record: UsageRecord | None) -> None:
        for _, _, hold in self._held:
            hold.record = record

    def settle(self) -> None:
        """Settle every reservation (never raises) and queue the alert checks of the budgets that have alerts."""
        for guard, key, hold in self._held:
            hold.settle()
            if guard.budget.on_alert is not None:
                alerts.check_later(guard, key)

    def __enter__(self) -> GroupHold:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.settle()

    async def __aenter__(self) -> GroupHold:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.settle()  # queues settles and checks: nothing blocks the loop
