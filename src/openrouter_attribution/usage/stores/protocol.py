"""The storage interface of the usage ledger, and an in-memory store.

A store persists :class:`UsageRecord` objects and reads them back. Any object
with ``write_many``, ``iter_records`` and ``close`` works (:class:`UsageStore`);
a store that can aggregate natively (SQL) also implements ``totals``
(:class:`SupportsTotals`), otherwise queries aggregate in Python with
:func:`aggregate_records`, which defines the semantics every store must match.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, Protocol, TypeVar, runtime_checkable

from openrouter_attribution.usage.records import (
    METADATA_PREFIX,
    TotalsBy,
    UsageRecord,
    UsageStoreError,
    UsageTotals,
    add_costs,
    sort_totals,
)

__all__ = [
    "BackendOwner", "Filters", "MemoryUsageStore", "SupportsBreakdown", "SupportsTotals", "UsageStore",
    "aggregate_records", "breakdown_records", "combine", "group_key", "matches", "recent_from",
]  # fmt: skip


class _Closable(Protocol):
    def close(self) -> None: ...


B = TypeVar("B", bound=_Closable)


class BackendOwner(Generic[B]):
    """Mixin of the SQL stores: their budget and reconciliation backend, created on first use, one per
    store and shared by every ledger and budget that uses it (see ``budgets.budget.OwnsBackend``)."""

    _backend: B | None = None
    _lock: threading.RLock

    def _new_backend(self) -> B:
        """Build the backend (the store imports its backend module here, on first use)."""
        raise NotImplementedError

    def backend(self) -> B:
        """This store's budget and reconciliation backend."""
        backend = self._backend
        if backend is None:
            with self._lock:
                backend = self._backend = self._backend or self._new_backend()
        return backend

    def close_backend(self) -> None:
        """Apply the settles the backend still holds (a ledger closing: its last calls' reservations)."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()


#: Outcomes that are not counted as errors in :class:`UsageTotals`.
NON_ERROR_OUTCOMES = ("ok", "abandoned")


@runtime_checkable
class UsageStore(Protocol):
    """Where a :class:`UsageLedger` writes records.

    Implementations must be safe to call from several threads, must ignore a
    record whose ``record_id`` is already stored, and raise on failure (the
    ledger catches, logs and counts). Time bounds are epoch seconds,
    ``since`` inclusive and ``until`` exclusive; ``user=None`` means all users.
    """

    def write_many(self, records: Sequence[UsageRecord]) -> None:
        """Store ``records`` atomically (all or none)."""
        ...

    def iter_records(
        self, since: float | None = None, until: float | None = None, user: str | None = None
    ) -> Iterator[UsageRecord]:
        """Yield matching records ordered by time."""
        ...

    def close(self) -> None:
        """Release resources; idempotent."""
        ...


@runtime_checkable
class SupportsTotals(Protocol):
    """A store that aggregates natively; must match :func:`aggregate_records`."""

    def totals(
        self,
        by: TotalsBy | str | None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[UsageTotals]:
        """Aggregated totals per group, in any order; ``by`` and ``where`` as :func:`group_key` and
        :func:`matches` read them (checked by the caller)."""
        ...

    def iter_records(
        self,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        where: Mapping[str, str] | None = None,
    ) -> Iterator[UsageRecord]:
        """Matching records ordered by time (``where`` as :func:`matches` reads it)."""
        ...


def matches(record: UsageRecord, where: Mapping[str, str]) -> bool:
    """Whether ``record`` passes every filter of a checked ``where`` (see ``records.check_where``)."""
    return all(group_key(record, name) == value for name, value in where.items())


def group_key(record: UsageRecord, by: TotalsBy | str | None) -> str | None:
    """The group a record falls in for ``totals(by=...)``.

    ``model`` is the model used, or the one requested when none was reported
    (failed calls); ``day`` is the UTC date ``YYYY-MM-DD`` of ``time``; ``metadata.<key>`` the value of
    that key in the record's metadata (``None`` without one).
    """
    if by is None:
        return None
    if by.startswith(METADATA_PREFIX):
        return None if record.metadata is None else record.metadata.get(by[len(METADATA_PREFIX) :])
    if by == "user":
        return record.user
    if by == "model":
        return record.model_used if record.model_used is not None else record.model_requested
    if by == "day":
        # floor first: fromtimestamp rounds to microseconds and could carry 23:59:59.9999999 into tomorrow.
        return datetime.fromtimestamp(math.floor(record.time), tz=UTC).strftime("%Y-%m-%d")
    if by == "session":
        return record.session_id
    if by == "provider":
        return record.provider
    if by == "kind":
        return record.kind
    raise ValueError(f"cannot group by {by!r}")


@dataclass
class _Accumulator:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None
    unknown_cost_requests: int = 0
    reported_cost: Decimal | None = None

    def add(self, rec: UsageRecord) -> None:
        self.requests += 1
        self.errors += rec.outcome not in NON_ERROR_OUTCOMES
        self.prompt_tokens += rec.prompt_tokens or 0
        self.completion_tokens += rec.completion_tokens or 0
        self.cached_tokens += rec.cached_tokens or 0
        self.reasoning_tokens += rec.reasoning_tokens or 0
        self.unknown_cost_requests += rec.cost is None
        self.cost = add_costs(self.cost, rec.cost)
        self.reported_cost = add_costs(self.reported_cost, rec.cost)  # a record alone carries no billed cost


def aggregate_records(records: Iterable[UsageRecord], by: TotalsBy | str | None) -> list[UsageTotals]:
    """Aggregate records in Python (the reference semantics for every store), sorted."""
    groups: dict[str | None, _Accumulator] = {}
    for rec in records:
        key = group_key(rec, by)
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = _Accumulator()
        acc.add(rec)
    return sort_totals([UsageTotals(key=key, **dataclasses.asdict(acc)) for key, acc in groups.items()])


class MemoryUsageStore:
    """A store that keeps records in memory (tests, short scripts); lost at exit.

    Example:
        >>> store = MemoryUsageStore()
        >>> store.write_many([UsageRecord(user="app_1")])
        >>> [r.user for r in store.iter_records()]
        ['app_1']
    """

    def __init__(self) -> None:
        self._records: dict[str, UsageRecord] = {}
        self._lock = threading.Lock()
        self._closed = False

    def write_many(self, records: Sequence[UsageRecord]) -> None:
        """Store records, ignoring ids already present."""
        with self._lock:
            if self._closed:
                raise UsageStoreError("the memory store is closed")
            for rec in records:
                self._records.setdefault(rec.record_id, rec)

    def iter_records(
        self, since: float | None = None, until: float | None = None, user: str | None = None
    ) -> Iterator[UsageRecord]:
        """Yield matching records ordered by time, then record id."""
        with self._lock:
            if self._closed:
                raise UsageStoreError("the memory store is closed")
            snapshot = list(self._records.values())
        snapshot.sort(key=lambda r: (r.time, r.record_id))
        for rec in snapshot:
            if since is not None and rec.time < since:
                continue
            if until is not None and rec.time >= until:
                continue
            if user is not None and rec.user != user:
                continue
            yield rec

    def close(self) -> None:
        """Forget nothing, but refuse further use."""
        self._closed = True

    def __repr__(self) -> str:
        return "MemoryUsageStore()"


# -- the dashboard's reads: several group keys at once, filters, the latest records -----------------------

Filters = Mapping[str, str]
"""Equality filters as ``records.check_where`` returns them (see :func:`matches`)."""


@runtime_checkable
class SupportsBreakdown(Protocol):
    """A store that groups by several keys at once and reads the latest records natively; must match
    :func:`breakdown_records` and :func:`recent_from`."""

    def breakdown(
        self, by: Sequence[TotalsBy | str], since: float | None, until: float | None, where: Filters
    ) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
        """Totals per combination of the ``by`` keys (each key as :func:`group_key` gives it), in any order."""
        ...

    def recent(self, limit: int, since: float | None, until: float | None, where: Filters) -> list[UsageRecord]:
        """The ``limit`` latest matching records, newest first (then record id, descending)."""
        ...


def breakdown_records(
    records: Iterable[UsageRecord], by: Sequence[TotalsBy | str], where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of ``by`` keys in Python (the reference semantics of ``breakdown``)."""
    groups: dict[tuple[str | None, ...], _Accumulator] = {}
    for rec in records:
        if where and not matches(rec, where):
            continue
        key = tuple(group_key(rec, name) for name in by)
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = _Accumulator()
        acc.add(rec)
    return [(key, UsageTotals(key=None, **dataclasses.asdict(acc))) for key, acc in groups.items()]


def recent_from(records: Iterable[UsageRecord], limit: int, where: Filters) -> list[UsageRecord]:
    """The ``limit`` latest of ``records`` passing ``where``, newest first (the reference of ``recent``)."""
    kept = [rec for rec in records if not where or matches(rec, where)]
    kept.sort(key=lambda r: (r.time, r.record_id), reverse=True)
    return kept[:limit]


def combine(key: str | None, rows: Iterable[UsageTotals]) -> UsageTotals:
    """One :class:`UsageTotals` under ``key`` adding up ``rows`` (counts summed, costs summed exactly)."""
    acc = _Accumulator()
    reconciled = mismatches = 0
    for row in rows:
        acc.requests += row.requests
        acc.errors += row.errors
        acc.prompt_tokens += row.prompt_tokens
        acc.completion_tokens += row.completion_tokens
        acc.cached_tokens += row.cached_tokens
        acc.reasoning_tokens += row.reasoning_tokens
        acc.unknown_cost_requests += row.unknown_cost_requests
        acc.cost = add_costs(acc.cost, row.cost)
        acc.reported_cost = add_costs(acc.reported_cost, row.reported_cost)
        reconciled += row.reconciled
        mismatches += row.user_mismatches
    return UsageTotals(key=key, reconciled=reconciled, user_mismatches=mismatches, **dataclasses.asdict(acc))
