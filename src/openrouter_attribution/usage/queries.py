"""Queries over any :class:`UsageStore`: time filters, totals, top users.

The ledger's query methods and the command line both call these functions, so
a report printed by ``openrouter-attribution report`` and ``ledger.totals()``
always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime

from openrouter_attribution.usage.budgets.budget import backend_of
from openrouter_attribution.usage.records import (
    TotalsBy,
    UsageQueryError,
    UsageRecord,
    UsageTotals,
    check_by,
    check_where,
    sort_totals,
)
from openrouter_attribution.usage.stores.protocol import (
    DAY,
    Filters,
    SupportsBreakdown,
    SupportsDaily,
    SupportsTotals,
    UsageStore,
    aggregate_records,
    breakdown_records,
    combine,
    in_daily,
    matches,
    merged,
    recent_from,
)

__all__ = [
    "TimeBound", "Where", "breakdown", "iter_records", "parse_time", "recent_records", "rollup", "top_users",
    "totals", "unreconciled",
]  # fmt: skip

TimeBound = datetime | date | str | float | int | None
"""A time filter: ``datetime`` (naive means UTC), ``date`` (midnight UTC), an ISO 8601
string (``"2025-01-31"``, ``"2025-01-31T12:00:00Z"``), or epoch seconds."""


def parse_time(value: TimeBound) -> float | None:
    """Convert a time filter to epoch seconds (``None`` stays ``None``).

    Raises:
        UsageQueryError: for values that are not a time.
    """
    return None if value is None else _epoch(value)


def _epoch(value: datetime | date | str | float | int) -> float:
    if isinstance(value, bool):
        raise UsageQueryError("a time filter cannot be a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise UsageQueryError(f"a time filter must be finite, got {value!r}")
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if isinstance(value, str):
        return _parse_time_text(value)
    raise UsageQueryError(f"a time filter must be a datetime, date, ISO string or number, not {type(value).__name__}")


def _parse_time_text(text: str) -> float:
    text = text.strip()
    try:
        number: float | None = float(text)
    except ValueError:
        number = None
    if number is not None:
        return _epoch(number)
    try:
        if len(text) == 10:
            return _epoch(date.fromisoformat(text))
        # fromisoformat takes "Z" but not a lowercase "z".
        iso = text[:-1] + "+00:00" if text.endswith("z") else text
        return _epoch(datetime.fromisoformat(iso))
    except ValueError as err:
        raise UsageQueryError(
            f"cannot read {text!r} as a time; use an ISO date such as 2025-01-31, "
            "an ISO datetime such as 2025-01-31T12:00:00Z, or epoch seconds"
        ) from err


def totals(
    store: UsageStore,
    by: TotalsBy | str | None = "user",
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    user: str | None = None,
    where: Mapping[str, str] | None = None,
) -> list[UsageTotals]:
    """Usage per group, sorted by cost (highest first, unknown last) then key.

    ``by`` is one of ``user``, ``model``, ``day``, ``session``, ``provider``, ``kind`` or
    ``metadata.<key>`` (a key of the records' metadata, e.g. ``metadata.tenant``; records without it
    fall in the ``None`` group). ``by=None`` returns exactly one overall row (zeros when nothing
    matches). ``where`` keeps the records equal to every filter given (``{"metadata.tenant": "acme",
    "kind": "chat"}``; names as :data:`~openrouter_attribution.usage.records.FILTERS` or
    ``metadata.<key>``). Aggregates in the store when it can (SQL: whole UTC days from its daily rollup
    when ``by`` and ``where`` name only keys it holds, see :func:`breakdown`), otherwise in Python.

    Raises:
        UsageQueryError: for an unknown ``by`` or filter, or an invalid time filter.
        UsageStoreError: when the store cannot be read.
    """
    check_by(by)
    filters = check_where(where)
    lo, hi = parse_time(since), parse_time(until)
    if isinstance(store, SupportsBreakdown):
        keys: tuple[str, ...] = () if by is None else (by,)
        if user is not None and filters.setdefault("user", user) != user:
            rows = []  # two different users asked for
        else:
            rows = rollup(_breakdown(store, keys, lo, hi, filters), None if by is None else 0)
    elif isinstance(store, SupportsTotals):
        rows = sort_totals(store.totals(by, lo, hi, user, filters or None))
    else:
        rows = aggregate_records(_filtered(store.iter_records(lo, hi, user), filters), by)
    if by is None and not rows:
        rows = [UsageTotals(key=None)]
    return rows


def _filtered(records: Iterator[UsageRecord], where: dict[str, str]) -> Iterator[UsageRecord]:
    return (rec for rec in records if matches(rec, where)) if where else records


def top_users(
    store: UsageStore,
    n: int = 10,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    user: str | None = None,
    where: Mapping[str, str] | None = None,
) -> list[UsageTotals]:
    """The ``n`` users with the highest cost (same order as :func:`totals`)."""
    if n < 0:
        raise UsageQueryError(f"n must be >= 0, got {n}")
    return totals(store, "user", since=since, until=until, user=user, where=where)[:n]


def iter_records(
    store: UsageStore,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    user: str | None = None,
    where: Mapping[str, str] | None = None,
) -> Iterator[UsageRecord]:
    """Records in time order; ``since`` inclusive, ``until`` exclusive; ``where`` as in :func:`totals`."""
    filters = check_where(where)
    lo, hi = parse_time(since), parse_time(until)
    if filters and isinstance(store, SupportsTotals):
        return store.iter_records(lo, hi, user, filters)
    return _filtered(store.iter_records(lo, hi, user), filters)


# -- the dashboard's reads: several group keys in one pass, filters, the latest records, the backlog ------

Where = Mapping[str, str]
"""Equality filters, as ``totals(where=...)`` takes them: ``user``, ``model``, ``kind``, ``session``,
``provider`` or ``metadata.<key>``, each to a string."""


def breakdown(
    store: UsageStore,
    by: Sequence[TotalsBy | str],
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    where: Where | None = None,
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of the ``by`` keys, in one pass over the matching records (the store
    aggregates when it can); roll a key up with :func:`rollup`. Unordered.

    Example:
        >>> from openrouter_attribution.usage import MemoryUsageStore, UsageRecord
        >>> store = MemoryUsageStore()
        >>> store.write_many([UsageRecord(user="app_1", model_used="m", kind="chat")])
        >>> [(key, t.requests) for key, t in breakdown(store, ["user", "kind"], where={"model": "m"})]
        [(('app_1', 'chat'), 1)]

    Raises:
        UsageQueryError: for an unknown key or filter, or an invalid time filter.
    """
    for name in by:
        check_by(name)
    filters, lo, hi = check_where(where), parse_time(since), parse_time(until)
    if isinstance(store, SupportsBreakdown):
        return _breakdown(store, tuple(by), lo, hi, filters)
    return breakdown_records(store.iter_records(lo, hi, filters.get("user")), tuple(by), filters)


def _breakdown(
    store: SupportsBreakdown, by: tuple[str, ...], lo: float | None, hi: float | None, where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """``store.breakdown``, reading whole UTC days from the store's daily rollup when it keeps one and every
    key and filter is one it groups by; the records of a partial day at either end are read as they are."""
    if not isinstance(store, SupportsDaily) or not in_daily((*by, *where)):
        return store.breakdown(by, lo, hi, where)
    first = None if lo is None else _day_from(lo)
    end = None if hi is None else math.floor(hi) // DAY  # the day hi falls in: the days before it are whole
    if first is not None and end is not None and first >= end:  # no whole day in the range
        return store.breakdown(by, lo, hi, where)
    parts = store.daily(by, first, end, where)
    if lo is not None and first is not None and lo < first * DAY:
        parts += store.breakdown(by, lo, first * DAY, where)
    if hi is not None and end is not None and hi > end * DAY:
        parts += store.breakdown(by, end * DAY, hi, where)
    return merged(parts)


def _day_from(lo: float) -> int:
    """The first UTC day starting at or after ``lo`` (in integers: a division of floats may round up)."""
    day = math.floor(lo) // DAY
    return day if day * DAY == lo else day + 1


def rollup(rows: Iterable[tuple[tuple[str | None, ...], UsageTotals]], position: int | None) -> list[UsageTotals]:
    """The rows of :func:`breakdown` added up by the key at ``position`` (``None``: one overall row, zeros
    when there are none), sorted as :func:`totals` sorts."""
    groups: dict[str | None, list[UsageTotals]] = {}
    for key, row in rows:
        groups.setdefault(None if position is None else key[position], []).append(row)
    if position is None:
        return [combine(None, groups.get(None, []))]
    return sort_totals([combine(key, members) for key, members in groups.items()])


def recent_records(
    store: UsageStore,
    limit: int = 50,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    where: Where | None = None,
) -> list[UsageRecord]:
    """The ``limit`` latest matching records, newest first (a store without native reads scans them all)."""
    if limit < 0:
        raise UsageQueryError(f"limit must be >= 0, got {limit}")
    filters, lo, hi = check_where(where), parse_time(since), parse_time(until)
    if isinstance(store, SupportsBreakdown):
        return store.recent(limit, lo, hi, filters)
    return recent_from(store.iter_records(lo, hi, filters.get("user")), limit, filters)


def unreconciled(store: UsageStore, *, since: TimeBound = None) -> int | None:
    """How many records with a generation id await their billed cost (``reconcile``); ``None`` when the
    store keeps no reconciliation state."""
    backend = backend_of(store)
    if backend is None:
        return None
    return int(backend.reconcile_pending(parse_time(since)))
