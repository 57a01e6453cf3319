"""Queries over any :class:`UsageStore`: time filters, totals, top users.

The ledger's query methods and the command line both call these functions, so
a report printed by ``openrouter-attribution report`` and ``ledger.totals()``
always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime

from openrouter_attribution.usage.records import (
    TOTALS_BY,
    TotalsBy,
    UsageQueryError,
    UsageRecord,
    UsageTotals,
    sort_totals,
)
from openrouter_attribution.usage.stores.protocol import SupportsTotals, UsageStore, aggregate_records

__all__ = ["TimeBound", "iter_records", "parse_time", "top_users", "totals"]

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
    by: TotalsBy | None = "user",
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    user: str | None = None,
) -> list[UsageTotals]:
    """Usage per group, sorted by cost (highest first, unknown last) then key.

    ``by=None`` returns exactly one overall row (zeros when nothing matches).
    Aggregates in the store when it can (SQL), otherwise in Python.

    Raises:
        UsageQueryError: for an unknown ``by`` or an invalid time filter.
        UsageStoreError: when the store cannot be read.
    """
    if by is not None and by not in TOTALS_BY:
        raise UsageQueryError(f"cannot group by {by!r}; choose one of {', '.join(TOTALS_BY)}")
    lo, hi = parse_time(since), parse_time(until)
    if isinstance(store, SupportsTotals):
        rows = sort_totals(store.totals(by, lo, hi, user))
    else:
        rows = aggregate_records(store.iter_records(lo, hi, user), by)
    if by is None and not rows:
        rows = [UsageTotals(key=None)]
    return rows


def top_users(
    store: UsageStore,
    n: int = 10,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    user: str | None = None,
) -> list[UsageTotals]:
    """The ``n`` users with the highest cost (same order as :func:`totals`)."""
    if n < 0:
        raise UsageQueryError(f"n must be >= 0, got {n}")
    return totals(store, "user", since=since, until=until, user=user)[:n]


def iter_records(
    store: UsageStore,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    user: str | None = None,
) -> Iterator[UsageRecord]:
    """Records in time order; ``since`` inclusive, ``until`` exclusive."""
    return store.iter_records(parse_time(since), parse_time(until), user)
