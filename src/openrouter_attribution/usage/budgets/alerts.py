"""Budget alerts: ``UserBudget(alerts=(0.5, 0.8, 1.0), on_alert=...)``, fired once per window in the whole fleet.

When a call of a budget with ``alerts`` ends, the budget's key (a user, a tenant) is queued for a check on
this process's alerts thread (one daemon thread, started on first use): never on the calling thread, so a
check, a slow store or an ``on_alert`` that blocks or raises neither delays nor fails a model call. The
check commits the process's recorded calls, reads the key's window from the store (the cost and count of
its records: calls in flight do not count) and, for each fraction of ``max_cost`` (kind ``"cost"``) and of
``max_requests`` (kind ``"requests"``) reached, claims the alert in the store's ``budget_alerts`` table: an
``INSERT ... ON CONFLICT DO NOTHING`` on its primary key (scope, key, kind, fraction, window), so of all the
processes and hosts sharing the ledger exactly one inserts the row, and only that one calls ``on_alert``.
The row keeps the alert's values and when it fired: :func:`alerts_fired` lists them (for a dashboard).

A callback that raises is logged once per budget (its exception type only: an alert's message could hold
a URL or a secret); the alert stays claimed (it is not retried: :func:`~openrouter_attribution.usage.budgets.
webhook.webhook` retries on its own). Checks queued when the process exits are waited for up to
:data:`EXIT_WAIT` seconds (before the ledgers opened before the first check close).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage.budgets.budget import backend_of, window
from openrouter_attribution.usage.budgets.keys import key_from_store, store_key
from openrouter_attribution.usage.records import format_cost

if TYPE_CHECKING:
    from openrouter_attribution.usage.budgets.guard import BudgetGuard

__all__ = ["EXIT_WAIT", "BudgetAlert", "alerts_fired", "check_later", "wait_for_alerts"]

logger = logging.getLogger("openrouter_attribution.usage")

EXIT_WAIT = 10.0
"""Seconds the interpreter's exit waits for queued alert checks (and their callbacks) at most."""
_CLAIMED_MAX = 100_000
_UTC = UTC


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget's window reached a fraction of one of its limits (passed to ``UserBudget.on_alert``)."""

    scope: str
    """The budget's scope: ``"user"`` or ``"metadata.<key>"``."""
    key: str | None
    """The budget's key as sent: a user id, or the metadata value (a tenant); ``None`` for the shared
    budget of calls without one."""
    kind: str
    """``"cost"`` (of ``max_cost``, USD) or ``"requests"`` (of ``max_requests``)."""
    fraction: float
    """The fraction of the limit reached (one of ``UserBudget.alerts``)."""
    spent: Decimal | int
    """What the window had used when the alert was claimed: USD, or requests."""
    limit: Decimal | int
    """The limit of the window."""
    period: str
    """``"day"``, ``"week"``, ``"month"`` or ``"total"``."""
    window_start: datetime
    """Start of the window (UTC)."""
    resets_at: datetime | None
    """Start of the next window (UTC); ``None`` for ``"total"``."""
    fired_at: datetime
    """When the alert was claimed (UTC)."""

    def to_json(self) -> dict[str, Any]:
        """The alert as JSON-ready values (amounts as decimal strings, times as ISO 8601)."""
        data = asdict(self)
        for name in ("window_start", "resets_at", "fired_at"):
            data[name] = None if data[name] is None else data[name].isoformat()
        if isinstance(self.spent, Decimal):
            data["spent"], data["limit"] = format_cost(self.spent), format_cost(Decimal(self.limit))
        return data


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=_UTC)


class _Checks:
    """The alerts thread of this process: keys to check, each queued once until it is checked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queued: dict[tuple[int, str | None], tuple[BudgetGuard, str | None]] = {}
        self._busy = False
        self._thread: threading.Thread | None = None
        self._claimed: set[tuple[Any, ...]] = set()
        self._failed: set[int] = set()

    def add(self, guard: BudgetGuard, key: str | None) -> None:
        with self._lock:
            self._queued[(id(guard), key)] = (guard, key)
            if self._thread is None or not self._thread.is_alive():  # none yet, or this is a forked child
                if self._thread is None:
                    # Registered now, after the ledgers in use: exit handlers run last first, so the queued
                    # checks are done before those ledgers close.
                    atexit.register(wait_for_alerts, EXIT_WAIT)
                self._thread = threading.Thread(target=self._run, name="openrouter-budget-alerts", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def wait(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queued or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queued:
                    self._busy = False
                    self._wake.notify_all()
                    self._wake.wait()
                queued, self._queued = list(self._queued.values()), {}
                self._busy = True
            for guard, key in queued:
                self._check(guard, key)

    def _check(self, guard: BudgetGuard, key: str | None) -> None:
        top = guard.budget
        try:
            for alert in self._claim(guard, key):
                assert top.on_alert is not None
                try:
                    top.on_alert(alert)
                except Exception as err:  # a callback must not stop the alerts of others
                    self._warn(top, "budget: on_alert raised %s; further failures of this budget are not logged", err)
        except Exception as err:  # the store is down: the next call's check tries again
            self._warn(top, "budget: cannot check alerts (%s); further failures of this budget are not logged", err)

    def _warn(self, budget: object, message: str, err: Exception) -> None:
        if id(budget) not in self._failed:
            self._failed.add(id(budget))
            logger.warning(message, type(err).__name__)

    def _claim(self, guard: BudgetGuard, key: str | None) -> list[BudgetAlert]:
        """Read the window of ``key`` and claim the alerts it reached; returns those this process claimed."""
        top = guard.budget
        budget = top.for_user(key) if key is not None else top
        now = top.clock()
        start, reset = window(budget.period, now)
        if guard._commit_pending is not None:  # this process's last records count
            guard._commit_pending()
        backend = guard.backend
        usage = backend.budget_usage(key, start, now, scope=top.scope, period=budget.period)
        stored = store_key(top.scope, key)
        claimed: list[BudgetAlert] = []
        limits: tuple[tuple[str, Decimal | int, Decimal | int | None], ...] = (
            ("cost", usage.spent, budget.max_cost),
            ("requests", usage.requests, budget.max_requests),
        )
        for kind, spent, limit in limits:
            if not limit:  # no limit, or 0 (nothing to take a fraction of)
                continue
            for fraction in top.alerts:
                if spent < limit * Decimal(repr(fraction)):
                    break
                mark = (id(backend), top.scope, stored, kind, fraction, start)
                if mark in self._claimed:
                    continue
                alert = BudgetAlert(scope=top.scope, key=key, kind=kind, fraction=fraction, spent=spent, limit=limit,
                                    period=budget.period, window_start=_time(start) or datetime.now(_UTC),
                                    resets_at=_time(reset), fired_at=datetime.now(_UTC))  # fmt: skip
                if backend.budget_alert_claim(stored, alert):
                    claimed.append(alert)
                if len(self._claimed) >= _CLAIMED_MAX:  # a cache of claims known: the store still decides
                    self._claimed.clear()
                self._claimed.add(mark)
        return claimed


_checks = _Checks()


def check_later(guard: BudgetGuard, key: str | None) -> None:
    """Queue a check of the window of ``key`` in ``guard``'s budget on the alerts thread (returns at once)."""
    _checks.add(guard, key)


def wait_for_alerts(timeout: float | None = None) -> bool:
    """Wait until the alert checks queued so far (and their callbacks) are done; returns False on timeout.

    Useful in tests and before a short-lived process exits (interpreter exit waits :data:`EXIT_WAIT` seconds).
    """
    return _checks.wait(timeout)


def alerts_fired(
    store: Any, since: float | datetime | None = None, until: float | datetime | None = None
) -> list[BudgetAlert]:
    """The alerts fired in ``store`` (a ledger's store, or a ledger), oldest first, fired within ``[since, until)``.

    Args:
        store: A :class:`~openrouter_attribution.UsageLedger` or its store (SQLite or PostgreSQL).
        since: Epoch seconds or an aware datetime; ``None``: from the first.
        until: Epoch seconds or an aware datetime (excluded); ``None``: up to now.

    Raises:
        ConfigurationError: the store keeps no alerts.

    Examples:
        >>> from openrouter_attribution import UsageLedger
        >>> with UsageLedger(":memory:") as ledger:
        ...     alerts_fired(ledger)
        []
    """
    store = getattr(store, "store", store)
    backend = backend_of(store)
    if backend is None or not hasattr(backend, "budget_alerts_fired"):
        raise ConfigurationError(f"{type(store).__name__} keeps no budget alerts; use an SQLite or PostgreSQL ledger")
    low = since.timestamp() if isinstance(since, datetime) else since
    high = until.timestamp() if isinstance(until, datetime) else until
    alerts = []
    for scope, stored, kind, fraction, start, spent, limit, period, reset, fired in backend.budget_alerts_fired(
        low, high
    ):
        amount = (lambda v: Decimal(str(v))) if kind == "cost" else (lambda v: int(Decimal(str(v))))
        alerts.append(BudgetAlert(scope=scope, key=key_from_store(stored)[1], kind=kind, fraction=float(fraction),
                                  spent=amount(spent), limit=amount(limit), period=period,
                                  window_start=_time(float(start)) or datetime.now(_UTC), resets_at=_time(reset),
                                  fired_at=_time(float(fired)) or datetime.now(_UTC)))  # fmt: skip
    return alerts
