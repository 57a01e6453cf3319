"""Per-user budgets, enforced before a request leaves, shared through the ledger's store.

A :class:`UserBudget` limits what one end-user may spend (``max_cost``, USD) and how many requests they
may make (``max_requests``) in a window: a UTC day, an ISO week (Monday 00:00 UTC), a calendar month,
or all time, as OpenRouter resets its key limits. The spend of a window is the sum of the cost of the
user's usage records in it (the billed cost where a record is reconciled, the reported one elsewhere)
plus the reservations of the user's calls still in flight.

Every budgeted call goes through one atomic step in the store before any network I/O: check that spend +
reservations + this call's reservation stay within ``max_cost`` (and requests + calls in flight + 1
within ``max_requests``), and insert the reservation. SQLite does it in one ``BEGIN IMMEDIATE``
transaction; PostgreSQL in one statement under a per-user transaction-scoped advisory lock (see
:mod:`~openrouter_attribution.usage.stores.postgres.backend`). Two processes on two hosts sharing the ledger can
never both take the last slot.

When the call ends, its reservation settles to the actual cost: it is linked to the call's usage record
and stops counting as soon as that record is in the store (a durable ledger commits it before the call
returns; a spooled or buffered record keeps the reservation counting until it lands, so spend is never
under-counted). A reservation whose process died expires after ``reservation_ttl`` seconds.

Leases (see :mod:`~openrouter_attribution.usage.budgets.guard`): far from the limit, one store write
reserves :attr:`UserBudget.lease` calls for the process, which its next calls draw from without store
I/O; near the limit every call is checked alone. A live lease over-counts, never under-counts.

Budgets fail closed: when the store cannot be reached (PostgreSQL down, SQLite locked beyond its
``busy_timeout``), the reserve step raises :class:`~openrouter_attribution.usage.UsageStoreError` and the
call is not sent, since its spend could not be checked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.keywords import checked_keywords
from openrouter_attribution.usage.records import parse_cost

if TYPE_CHECKING:
    from openrouter_attribution.usage.budgets.alerts import BudgetAlert

__all__ = [
    "BudgetCheck",
    "BudgetStatus",
    "BudgetUsage",
    "OwnsBackend",
    "Period",
    "Reservation",
    "QueuedSettles",
    "SupportsBudgets",
    "SupportsQueuedSettles",
    "UserBudget",
    "backend_of",
    "budget_status",
    "close_backend",
    "window",
]

Period = Literal["day", "week", "month", "total"]
"""Budget windows: UTC day, ISO week (from Monday 00:00 UTC), calendar month (UTC), or all time."""
Unattributed = Literal["shared", "allow", "refuse"]
"""What a budget does with calls that resolve no user (see :attr:`UserBudget.unattributed`)."""

PERIODS: tuple[str, ...] = get_args(Period)
DEFAULT_FALLBACK_RESERVE = Decimal("0.01")
DEFAULT_RESERVATION_TTL = 900.0
DEFAULT_LEASE = 32
DEFAULT_MAX_LEASE = 1000
_UTC = UTC


def _check_scope(scope: object) -> None:
    if scope == "user":
        return
    name = scope[len("metadata.") :] if isinstance(scope, str) and scope.startswith("metadata.") else ""
    if not name or not name.isprintable() or any(c in name for c in '"\\'):
        raise ConfigurationError(
            f"UserBudget scope must be 'user' or 'metadata.<key>' (a printable metadata key without quotes or "
            f"backslashes), not {scope!r}"
        )


def _check_alerts(alerts: object, on_alert: object) -> tuple[float, ...]:
    if not isinstance(alerts, (tuple, list)) or not all(
        isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 1 for f in alerts
    ):
        raise ConfigurationError(f"UserBudget alerts must be fractions of the limit in (0, 1], got {alerts!r}")
    if alerts and not callable(on_alert):
        raise ConfigurationError("UserBudget alerts= needs on_alert=, a callable that takes a BudgetAlert")
    if on_alert is not None and not alerts:
        raise ConfigurationError("UserBudget on_alert= needs alerts=, e.g. alerts=(0.5, 0.8, 1.0)")
    return tuple(sorted({float(f) for f in alerts}))


def window(period: str, now: float) -> tuple[float, float | None]:
    """The window of ``period`` that holds ``now``: ``(start, reset)`` in epoch seconds, UTC.

    ``reset`` (the start of the next window) is ``None`` for ``"total"``, whose window starts at 0.

    Examples:
        >>> window("week", 1767484800.0)  # Sunday 2026-01-04 00:00 UTC
        (1766966400.0, 1767571200.0)
    """
    if period == "total":
        return 0.0, None
    moment = datetime.fromtimestamp(math.floor(now), tz=_UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, reset = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        reset = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        if start.month == 12:
            reset = start.replace(year=start.year + 1, month=1)
        else:
            reset = start.replace(month=start.month + 1)
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    return start.timestamp(), reset.timestamp()


def _amount(name: str, value: object) -> Decimal | None:
    try:
        amount = parse_cost(value)
    except ValueError as err:
        raise ConfigurationError(f"UserBudget {name} must be a Decimal amount in USD: {err}") from None
    if amount is not None and amount < 0:
        raise ConfigurationError(f"UserBudget {name} must be >= 0, got {amount}")
    return amount


Limits = Mapping[str, "UserBudget"] | Callable[[str], "UserBudget | None"]


@checked_keywords
@dataclass(frozen=True, kw_only=True)
class UserBudget:
    """How much each end-user may spend and request per window, enforced before each request.

    Pass it as ``budget=`` to a model together with ``ledger=``: the ledger's store holds the spend and
    the reservations, so every process and host that shares the ledger shares the budget.

    Examples:
        >>> from decimal import Decimal
        >>> from openrouter_attribution import BudgetExceededError, UsageLedger, UserBudget
        >>> from openrouter_attribution.langchain import ChatOpenRouter
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server, UsageLedger(":memory:") as ledger:
        ...     llm = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=server.base_url, api_key=server.api_key,
        ...                          ledger=ledger, budget=UserBudget(max_requests=1, period="day"))
        ...     _ = llm.invoke("Hello", user="app_42")
        ...     try:
        ...         llm.invoke("Hello again", user="app_42")
        ...     except BudgetExceededError as err:
        ...         print(err.user, err.kind, err.limit, err.period, len(server.chat_requests))
        app_42 requests 1 day 1
    """

    max_cost: Decimal | None = None
    """USD a user may spend per window (reported cost, or billed cost once reconciled); ``None``: no cost limit."""
    max_requests: int | None = None
    """Requests a user may make per window (calls in flight included, failed calls counted); ``None``: no limit."""
    period: Period = "day"
    """The window: ``"day"`` (UTC midnight), ``"week"`` (Monday 00:00 UTC), ``"month"`` or ``"total"``."""
    reserve: Decimal | None = None
    """USD held for each call while it runs. ``None``: derived per call from the model's pricing in
    ``GET /models`` (prompt estimated at one token per 3 characters, completion at the call's
    ``max_tokens``, else the model's maximum completion tokens), else :attr:`fallback_reserve`."""
    fallback_reserve: Decimal = DEFAULT_FALLBACK_RESERVE
    """USD held for a call whose model has no known pricing (``reserve=None`` only)."""
    limits: Limits | None = None
    """Per-user budgets that replace this one: a mapping from user id *as sent* (after the identity
    policy) to a :class:`UserBudget`, or a callable taking that id and returning one (or ``None`` for
    the default); with another :attr:`scope`, keyed by that scope's value. A replacement's own
    ``limits``, ``unattributed``, ``scope``, ``alerts`` and ``on_alert`` are not used (this budget's are)."""
    unattributed: Unattributed = "shared"
    """Calls that resolve no user: ``"shared"`` (default) share one budget, the same limits; ``"allow"``
    sends them unbudgeted; ``"refuse"`` raises ``MissingUserError`` before sending. Under
    ``require_user=True`` they are refused anyway, before the budget is consulted."""
    reservation_ttl: float = DEFAULT_RESERVATION_TTL
    """Seconds a reservation counts at most (a process that died mid-call cannot hold budget forever).
    Keep it above your longest call or stream."""
    lease: int = DEFAULT_LEASE
    """Calls a process takes from a user's budget with one store write while the user is far from the
    limit (room for at least twice as many left in every limit); near the limit every call goes to the
    store. A lease counts in full until it is released (used up, after about a second without calls,
    or when the ledger closes), so calls it already served count twice meanwhile: over-counted, never
    under-counted. ``1`` takes every call from the store. This is the first lease's size; see
    :attr:`max_lease`."""
    max_lease: int | None = None
    """The largest lease: a lease its calls used up within a second makes the next one twice as large,
    one that took longer half as large (never below :attr:`lease`), so a busy user's lease lasts about
    a second of their calls in this process and takes a store write that often. ``None``: 1,000, the
    largest allowed; set it to :attr:`lease` for leases of a fixed size."""
    scope: str = "user"
    """What one budget counts: ``"user"`` (each end-user id as sent), or ``"metadata.<key>"``: every call
    whose ``metadata`` (as sent, after the identity policy) has the same value for ``<key>`` shares one
    budget, e.g. ``"metadata.tenant"`` limits the sum of a tenant's users. :attr:`limits` is then keyed
    by that value. A call whose metadata lacks the key is treated as a call without a user
    (:attr:`unattributed`). Needs an SQLite or PostgreSQL ledger."""
    alerts: tuple[float, ...] = ()
    """Fractions of a limit (``0 < f <= 1``), e.g. ``(0.5, 0.8, 1.0)``: when the spend of a key's window
    (cost of its records for ``max_cost``, their count for ``max_requests``) first reaches a fraction,
    :attr:`on_alert` is called once, in the whole fleet sharing the ledger."""
    on_alert: Callable[[BudgetAlert], object] | None = field(default=None, repr=False, compare=False)
    """Called with a :class:`~openrouter_attribution.usage.budgets.alerts.BudgetAlert` on a background
    thread (never on the model call's): it may block or raise without affecting calls (an error is
    logged once per budget). :func:`~openrouter_attribution.usage.budgets.webhook.webhook` builds one."""
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    """Epoch seconds now; replaceable for tests of window boundaries."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_cost", _amount("max_cost", self.max_cost))
        object.__setattr__(self, "reserve", _amount("reserve", self.reserve))
        fallback = _amount("fallback_reserve", self.fallback_reserve)
        object.__setattr__(self, "fallback_reserve", DEFAULT_FALLBACK_RESERVE if fallback is None else fallback)
        if self.max_requests is not None and (
            isinstance(self.max_requests, bool) or not isinstance(self.max_requests, int) or self.max_requests < 0
        ):
            raise ConfigurationError(f"UserBudget max_requests must be a whole number >= 0, got {self.max_requests!r}")
        if self.period not in PERIODS:
            raise ConfigurationError(f"UserBudget period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if self.unattributed not in get_args(Unattributed):
            raise ConfigurationError(
                f"UserBudget unattributed must be 'shared', 'allow' or 'refuse', not {self.unattributed!r}"
            )
        if not (isinstance(self.reservation_ttl, (int, float)) and self.reservation_ttl > 0):
            raise ConfigurationError(f"UserBudget reservation_ttl must be > 0 seconds, got {self.reservation_ttl!r}")
        if isinstance(self.lease, bool) or not isinstance(self.lease, int) or not 1 <= self.lease <= 1000:
            raise ConfigurationError(f"UserBudget lease must be a whole number from 1 to 1000, got {self.lease!r}")
        if self.max_lease is not None and (isinstance(self.max_lease, bool) or not isinstance(self.max_lease, int)
                                           or not self.lease <= self.max_lease <= 1000):  # fmt: skip
            raise ConfigurationError(f"UserBudget max_lease must be None or a whole number from lease ({self.lease}) "
                                     f"to 1000, got {self.max_lease!r}")  # fmt: skip
        _check_scope(self.scope)
        object.__setattr__(self, "alerts", _check_alerts(self.alerts, self.on_alert))
        if isinstance(self.limits, Mapping):
            for key, value in self.limits.items():
                if not isinstance(value, UserBudget):
                    raise ConfigurationError(f"UserBudget limits values must be UserBudget, not {type(value).__name__}")
                if not isinstance(key, str):
                    raise ConfigurationError("UserBudget limits keys must be user ids (str) as sent")
        elif self.limits is not None and not callable(self.limits):
            raise ConfigurationError("UserBudget limits must be a mapping of user id -> UserBudget, or a callable")

    @property
    def lease_cap(self) -> int:
        """The largest lease this budget takes (:attr:`max_lease`, or its default)."""
        return DEFAULT_MAX_LEASE if self.max_lease is None else self.max_lease

    @property
    def limited(self) -> bool:
        """Whether this budget limits anything."""
        return self.max_cost is not None or self.max_requests is not None

    def for_user(self, user: str | None) -> UserBudget:
        """The budget that applies to ``user`` (as sent): its entry in :attr:`limits`, else this one."""
        if user is None or self.limits is None:
            return self
        found = self.limits.get(user) if isinstance(self.limits, Mapping) else self.limits(user)
        if found is None:
            return self
        if not isinstance(found, UserBudget):
            raise ConfigurationError(f"UserBudget limits returned {type(found).__name__}, not a UserBudget or None")
        return found


@dataclass(frozen=True, slots=True)
class Reservation:
    """One call's claim on its user's budget, as the store receives it."""

    id: str
    """A unique id (32 hex digits)."""
    user: str | None
    """The user as sent (the scope's value for another :attr:`scope`); ``None`` for the shared unattributed budget."""
    amount: Decimal
    """USD held per call while it runs."""
    since: float
    """Start of the window (epoch seconds)."""
    now: float
    """When the reservation is made."""
    expires_at: float
    """When it stops counting even if never settled."""
    max_cost: Decimal | None
    """The cost limit of the window."""
    max_requests: int | None
    """The request limit of the window."""
    slots: int = 1
    """Calls asked for: more than 1 asks for a lease, granted only while room for twice as many is left."""
    period: str = "day"
    """The budget's :attr:`UserBudget.period`."""
    scope: str = "user"
    """The budget's :attr:`UserBudget.scope`; a store that does not say ``scoped_budgets = True`` only
    ever receives ``"user"``. Its keys in the store: :mod:`~openrouter_attribution.usage.budgets.keys`."""


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """What a user has used in a window."""

    spent: Decimal = Decimal(0)
    """USD of the usage records in the window (billed where reconciled, reported elsewhere)."""
    requests: int = 0
    """Usage records in the window."""
    reserved: Decimal = Decimal(0)
    """USD held by calls in flight."""
    in_flight: int = 0
    """Calls in flight (unsettled reservations that have not expired)."""


@dataclass(frozen=True, slots=True)
class BudgetCheck(BudgetUsage):
    """The outcome of one reserve step: the usage before this call, and whether it was granted."""

    granted: bool = False
    """True when the reservation was taken."""
    slots: int = 0
    """Calls the reservation holds: the lease asked for, 1, or 0 when refused."""


@runtime_checkable
class SupportsBudgets(Protocol):
    """A store that enforces budgets: implement it beside :class:`UsageStore` and a ledger over the store
    takes ``budget=`` (:class:`SupportsQueuedSettles` is an optional extra). Methods must be thread-safe
    and raise :class:`~openrouter_attribution.usage.UsageStoreError` when the store cannot be reached
    (the call then fails closed: it is not sent).

    A user's window counts the cost (billed where reconciled) and number of their records with ``time >=
    since``, plus ``amount`` x ``slots`` and ``slots`` of their reservations made since then (``now >=
    since``) that have not expired (``expires_at > now``) and are not settled to records now stored.
    """

    def budget_reserve(self, reservation: Reservation, *, settle_all: bool = False) -> BudgetCheck:
        """Atomically (no reserve step of the same user interleaves, in any process) take ``reservation``
        if it fits: ``n`` calls fit when spent + reserved + n x ``amount`` <= ``max_cost`` and requests +
        in flight + n <= ``max_requests`` (``None`` limits nothing). Grant ``slots`` when ``slots > 1``
        and twice as many fit (a lease), else 1 when 1 fits (a store may always grant 1), else none.
        ``settle_all``: apply every held-back settle first (a store that settles at once ignores it).

        Returns:
            ``BudgetCheck(granted=True, slots=n)``; refused, ``granted=False`` with the usage that
            refused it (``spent``, ``requests``, ``reserved``, ``in_flight``).
        """
        ...

    def budget_settle(self, reservation: Reservation, record_ids: Sequence[str], *, after: float = 0.0) -> None:
        """End a reservation: each call it served whose record (``record_ids``) is not stored yet keeps
        counting ``amount`` and one request until it is (or the reservation expires); the rest is
        released. May return before the store is written; ``after`` (monotonic seconds) lets it wait
        until then for a reserve step or a background thread."""
        ...

    def budget_usage(self, user: str | None, since: float, now: float) -> BudgetUsage:
        """The user's usage in the window starting at ``since``, at ``now``."""
        ...


@runtime_checkable
class QueuedSettles(Protocol):
    """Settles a store holds back for a later reserve step (:class:`~.settles.SettleQueue`)."""

    @property
    def pending(self) -> int:
        """Settles not applied yet."""
        ...

    def watch(self, ticker: Callable[[bool], bool]) -> None:
        """Call ``ticker(force)`` twice a second while it returns True, and with ``force=True`` at close."""
        ...


@runtime_checkable
class SupportsQueuedSettles(Protocol):
    """Optional beside :class:`SupportsBudgets` (the SQLite and PostgreSQL backends have it): with it a
    budget leases calls far from the limit (one store write for many calls, released by the ticker)
    and asks again before a refusal only when settles are pending; without it every budgeted call
    takes a reserve step and a refused one is asked once more with ``settle_all=True``."""

    settles: QueuedSettles
    """The held-back settles, and the ticker of the leases."""


@runtime_checkable
class OwnsBackend(Protocol):
    """A store that serves budgets and reconciliation through a backend of its own (the SQLite and
    PostgreSQL stores: their reservation tables, queued settles and billed-cost columns)."""

    def backend(self) -> Any:
        """The store's budget and reconciliation backend, created on first use (one per store)."""
        ...

    def close_backend(self) -> None:
        """Apply what the backend still holds (settles of this process's last calls)."""
        ...


def backend_of(store: Any) -> Any:
    """The budget and reconciliation backend of ``store``; ``None`` when it has none.

    A store that owns one (:class:`OwnsBackend`: SQLite, PostgreSQL) hands it out; a store that
    implements :class:`SupportsBudgets` itself is its own backend.
    """
    if isinstance(store, OwnsBackend):
        return store.backend()
    return store if isinstance(store, SupportsBudgets) else None


def close_backend(store: Any) -> None:
    """Apply the settles ``store``'s backend still holds (called when a ledger closes)."""
    if isinstance(store, OwnsBackend):
        store.close_backend()


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A user's budget window as it stands: what is used, what is held, the limits and the reset.

    Examples:
        >>> from openrouter_attribution import UsageLedger, UsageRecord
        >>> with UsageLedger(":memory:") as ledger:
        ...     ledger.record(UsageRecord(user="app_1", cost=Decimal("0.25")))
        ...     status = ledger.budget_status("app_1", UserBudget(max_cost=Decimal(1), period="month"))
        >>> status.usage.spent, status.remaining_cost, status.window_start.day
        (Decimal('0.25'), Decimal('0.75'), 1)
    """

    user: str | None
    """The user id as sent; ``None`` for the shared unattributed budget."""
    period: str
    """``"day"``, ``"week"``, ``"month"`` or ``"total"``."""
    window_start: datetime
    """Start of the current window (UTC)."""
    resets_at: datetime | None
    """Start of the next window (UTC); ``None`` for ``"total"``."""
    usage: BudgetUsage
    """Spend and requests of ended calls, and what calls in flight hold."""
    max_cost: Decimal | None
    """The cost limit, if any."""
    max_requests: int | None
    """The request limit, if any."""

    @property
    def remaining_cost(self) -> Decimal | None:
        """USD left in the window (``max_cost`` - spent - reserved, at least 0); ``None`` without a limit."""
        if self.max_cost is None:
            return None
        return max(Decimal(0), self.max_cost - self.usage.spent - self.usage.reserved)

    @property
    def remaining_requests(self) -> int | None:
        """Requests left in the window (calls in flight count as made); ``None`` without a limit."""
        if self.max_requests is None:
            return None
        return max(0, self.max_requests - self.usage.requests - self.usage.in_flight)


def budget_status(store: Any, user: str | None, budget: UserBudget | None = None) -> BudgetStatus:
    """The budget window of ``user`` (as sent) in ``store``, under ``budget`` (default: a day, no limit).
    With a ``budget`` of another :attr:`~UserBudget.scope`, ``user`` is that scope's value (a tenant).

    Raises:
        ConfigurationError: the store holds no budgets (neither SQLite nor PostgreSQL nor a
            :class:`SupportsBudgets` store).
    """
    top = budget or UserBudget()
    budget = top.for_user(user)
    backend = backend_of(store)
    if backend is None:
        raise ConfigurationError(
            f"{type(store).__name__} holds no budgets; use an SQLite or PostgreSQL ledger, or a "
            "store that implements SupportsBudgets"
        )
    now = budget.clock()
    start, reset = window(budget.period, now)
    return BudgetStatus(
        user=user,
        period=budget.period,
        window_start=datetime.fromtimestamp(start, tz=_UTC),
        resets_at=None if reset is None else datetime.fromtimestamp(reset, tz=_UTC),
        usage=backend.budget_usage(user, start, now, scope=top.scope, period=budget.period)
        if getattr(backend, "scoped_budgets", False)
        else backend.budget_usage(user, start, now),
        max_cost=budget.max_cost,
        max_requests=budget.max_requests,
    )
