"""The PostgreSQL store's dashboard reads: totals grouped by several keys in one pass, and the latest records.

Whole UTC days come from the daily rollup ``usage_daily`` (:mod:`.daily`), a few thousand rows a day; other
reads scan the records. ``NUMERIC`` sums are exact and native; the UTC day is a day number
(``floor(time)`` divided by 86,400), made ``YYYY-MM-DD`` in Python as
:func:`~openrouter_attribution.usage.stores.protocol.group_key` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from openrouter_attribution.usage.records import TotalsBy, UsageRecord, UsageTotals, metadata_key
from openrouter_attribution.usage.stores.protocol import DAY, Filters
from openrouter_attribution.usage.stores.rows import COLUMNS, from_row, totals_row

__all__ = ["breakdown", "daily", "recent"]

Fetch = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]

_KEYS: dict[str, str] = {
    "user": '"user"',
    "model": "COALESCE(model_used, model_requested)",
    "day": "floor(floor(time) / 86400)::bigint",
    "session": "session_id",
    "provider": "provider",
    "kind": "kind",
}
_DAILY_KEYS: dict[str, str] = {"user": '"user"', "model": "model", "day": "day", "provider": "provider", "kind": "kind"}
_QUOTED = ", ".join('"user"' if c == "user" else c for c in COLUMNS)
# Both sums in one order, as totals_row reads them after the key.
_SUMS = ("COUNT(*), COUNT(*) FILTER (WHERE outcome NOT IN ('ok', 'abandoned')), COALESCE(SUM(prompt_tokens), 0), "
         "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
         "SUM(COALESCE(billed_cost, cost)), COUNT(*) - COUNT(COALESCE(billed_cost, cost)), SUM(cost), "
         "COUNT(billed_cost), COUNT(*) FILTER (WHERE user_mismatch)")  # fmt: skip
_DAILY_SUMS = ("SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), "
               "SUM(reasoning_tokens), CASE WHEN SUM(priced) > 0 THEN SUM(cost) END, "
               "SUM(requests) - SUM(priced), CASE WHEN SUM(reported) > 0 THEN SUM(reported_cost) END, "
               "SUM(reconciled), SUM(user_mismatches)")  # fmt: skip


def column(name: str, keys: dict[str, str] = _KEYS) -> tuple[str, list[object]]:
    """The SQL of a group key or filter (a ``TOTALS_BY`` name or ``metadata.<key>``) and its parameters."""
    key = metadata_key(name)
    if key is None:
        return keys[name], []
    return "(metadata::jsonb ->> %s)", [key]


def where_sql(since: float | None, until: float | None, where: Filters) -> tuple[str, list[object]]:
    """`` WHERE ...`` on ``usage_records`` (``""`` for none) and its parameters."""
    return _condition("time", since, until, where, _KEYS)


def _condition(
    bound: str, since: float | None, until: float | None, where: Filters, keys: dict[str, str]
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append(f"{bound} >= %s")
        params.append(since)
    if until is not None:
        clauses.append(f"{bound} < %s")
        params.append(until)
    for name, value in where.items():
        sql, column_params = column(name, keys)
        clauses.append(f"{sql} = %s")
        params.extend((*column_params, value))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _sums(
    fetch: Fetch, source: str, sums: str, by: Sequence[str], keys: dict[str, str], condition: tuple[str, list[object]]
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """One grouped SELECT of ``sums`` from ``source``; the day number of a ``day`` key as ``YYYY-MM-DD``."""
    columns = [column(name, keys) for name in by]
    head = "".join(f"{sql}, " for sql, _ in columns)
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(by)))}" if by else ""
    params = [*(param for _, key_params in columns for param in key_params), *condition[1]]
    found = []
    for row in fetch(f"SELECT {head}{sums} FROM {source}{condition[0]}{group}", params):
        if not row[len(by)]:  # no requests: a group emptied by deletes, or SQL's row of zeros without GROUP BY
            continue
        key = tuple(None if value is None else _day(value) if name == "day" else str(value)
                    for name, value in zip(by, row, strict=False))  # fmt: skip
        found.append((key, totals_row((None, *row[len(by) :]))))
    return found


@functools.lru_cache(maxsize=4096)
def _day(value: int) -> str:
    return datetime.fromtimestamp(value * DAY, tz=UTC).strftime("%Y-%m-%d")


def breakdown(
    fetch: Fetch, by: Sequence[TotalsBy | str], since: float | None, until: float | None, where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of the ``by`` keys from the records, in one query."""
    return _sums(fetch, "usage_records", _SUMS, by, _KEYS, where_sql(since, until, where))


def daily(
    fetch: Fetch, by: Sequence[TotalsBy | str], first: int | None, end: int | None, where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of the ``by`` keys over the UTC days ``first`` to ``end`` (day numbers, ``end``
    excluded, ``None`` open), from the rollup's rows."""
    return _sums(fetch, "usage_daily", _DAILY_SUMS, by, _DAILY_KEYS, _condition("day", first, end, where, _DAILY_KEYS))


def recent(fetch: Fetch, limit: int, since: float | None, until: float | None, where: Filters) -> list[UsageRecord]:
    """The ``limit`` latest matching records, newest first (a backward scan of the time or user index)."""
    condition, params = where_sql(since, until, where)
    sql = f"SELECT {_QUOTED} FROM usage_records{condition} ORDER BY time DESC, record_id DESC LIMIT %s"
    return [from_row(row) for row in fetch(sql, [*params, limit])]
