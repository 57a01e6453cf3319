"""Every key's budget window at once (for a dashboard): who is closest to their limit.

:func:`budget_windows` reads the spend and request count of each key (a user, a tenant) of a budget's scope
in the current window from the store's spend rollup (one grouped read), and puts each beside the limits
the budget gives that key (its ``limits`` included). The shared budget of calls without a value has no
rollup and is not listed. Calls in flight are not counted: see
:func:`~openrouter_attribution.usage.budgets.budget.budget_status` for one key with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage.budgets.budget import UserBudget, backend_of, window
from openrouter_attribution.usage.budgets.keys import key_from_store

__all__ = ["BudgetWindow", "budget_windows"]

_UTC = UTC


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    """One key's current window under a budget: what its records used, and its limits."""

    key: str | None
    """The budget's key as sent (a user id, a metadata value); ``None`` for calls without one."""
    spent: Decimal
    """USD of the key's records in the window (billed where reconciled)."""
    requests: int
    """The key's records in the window."""
    max_cost: Decimal | None
    """The key's cost limit (from the budget's ``limits`` where it has an entry)."""
    max_requests: int | None
    """The key's request limit."""
    window_start: datetime
    """Start of the window (UTC)."""
    resets_at: datetime | None
    """Start of the next window (UTC); ``None`` for ``"total"``."""

    @property
    def used(self) -> float | None:
        """The largest fraction of a limit used (``1.0``: a limit is reached); ``None`` without limits."""
        fractions = []
        if self.max_cost is not None:
            fractions.append(float(self.spent / self.max_cost) if self.max_cost else 1.0)
        if self.max_requests is not None:
            fractions.append(self.requests / self.max_requests if self.max_requests else 1.0)
        return max(fractions) if fractions else None


def budget_windows(store: Any, budget: UserBudget) -> list[BudgetWindow]:
    """The current window of every key of ``budget``'s scope that has records in it, closest to a limit first.

    Args:
        store: A :class:`~openrouter_attribution.UsageLedger` or its store (SQLite or PostgreSQL).
        budget: Gives the scope, the period and each key's limits.

    Raises:
        ConfigurationError: the store keeps no budget windows.

    Examples:
        >>> from openrouter_attribution import UsageLedger, UsageRecord
        >>> with UsageLedger(":memory:") as ledger:
        ...     ledger.record(UsageRecord(user="app_1", cost=Decimal("0.25")))
        ...     (w,) = budget_windows(ledger, UserBudget(max_cost=Decimal(1), period="month"))
        >>> w.key, w.spent, w.requests, w.used
        ('app_1', Decimal('0.25'), 1, 0.25)
    """
    commit_pending = getattr(store, "commit_pending", None)  # a ledger: its journaled records count too
    if commit_pending is not None:
        commit_pending()
    store = getattr(store, "store", store)
    backend = backend_of(store)
    if backend is None or not hasattr(backend, "budget_windows"):
        raise ConfigurationError(f"{type(store).__name__} keeps no budget windows; use an SQLite or PostgreSQL ledger")
    now = budget.clock()
    start, reset = window(budget.period, now)
    started = datetime.fromtimestamp(start, _UTC)
    resets_at = None if reset is None else datetime.fromtimestamp(reset, _UTC)
    windows = []
    for stored, spent, requests in backend.budget_windows(budget.scope, start):
        key = key_from_store(stored)[1]
        limits = budget.for_user(key) if key is not None else budget
        windows.append(BudgetWindow(key=key, spent=spent, requests=requests, max_cost=limits.max_cost,
                                    max_requests=limits.max_requests, window_start=started,
                                    resets_at=resets_at))  # fmt: skip
    return sorted(windows, key=lambda w: (-(w.used or 0.0), w.key or ""))
