"""The PostgreSQL store's dashboard reads: totals grouped by several keys in one pass, and the latest records.

``NUMERIC`` sums are exact and native, so costs need nothing the SQLite reads do; the UTC day is a day
number (``floor(time)`` divided by 86,400), made ``YYYY-MM-DD`` in Python as
:func:`~openrouter_attribution.usage.stores.protocol.group_key` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from openrouter_attribution.usage.records import TotalsBy, UsageRecord, UsageTotals, metadata_key
from openrouter_attribution.usage.stores.protocol import Filters
from openrouter_attribution.usage.stores.rows import COLUMNS, from_row, totals_row

__all__ = ["breakdown", "recent"]

Fetch = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]

_KEYS: dict[str, str] = {
    "user": '"user"',
    "model": "COALESCE(model_used, model_requested)",
    "day": "floor(floor(time) / 86400)::bigint",
    "session": "session_id",
    "provider": "provider",
    "kind": "kind",
}
_QUOTED = ", ".join('"user"' if c == "user" else c for c in COLUMNS)
_SUMS = ("COUNT(*), COUNT(*) FILTER (WHERE outcome NOT IN ('ok', 'abandoned')), COALESCE(SUM(prompt_tokens), 0), "
         "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
         "SUM(COALESCE(billed_cost, cost)), COUNT(*) - COUNT(COALESCE(billed_cost, cost)), SUM(cost), "
         "COUNT(billed_cost), COUNT(*) FILTER (WHERE user_mismatch)")  # fmt: skip


def column(name: str) -> tuple[str, list[object]]:
    """The SQL of a group key or filter (a ``TOTALS_BY`` name or ``metadata.<key>``) and its parameters."""
    key = metadata_key(name)
    if key is None:
        return _KEYS[name], []
    return "(metadata::jsonb ->> %s)", [key]


def where_sql(since: float | None, until: float | None, where: Filters) -> tuple[str, list[object]]:
    """`` WHERE ...`` on ``usage_records`` (``""`` for none) and its parameters."""
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("time >= %s")
        params.append(since)
    if until is not None:
        clauses.append("time < %s")
        params.append(until)
    for name, value in where.items():
        sql, column_params = column(name)
        clauses.append(f"{sql} = %s")
        params.extend((*column_params, value))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def breakdown(
    fetch: Fetch, by: Sequence[TotalsBy | str], since: float | None, until: float | None, where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of the ``by`` keys, in one query."""
    columns = [column(name) for name in by]
    keys = [sql for sql, _ in columns]
    condition, params = where_sql(since, until, where)
    params = [*(param for _, key_params in columns for param in key_params), *params]
    head = "".join(f"{key}, " for key in keys)
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
    day = by.index("day") if "day" in by else -1
    found = []
    for row in fetch(f"SELECT {head}{_SUMS} FROM usage_records{condition}{group}", params):
        if not row[len(keys)]:  # without group keys SQL answers one row of zeros when nothing matches
            continue
        key = tuple(
            None
            if value is None
            else datetime.fromtimestamp(int(value) * 86400, tz=UTC).strftime("%Y-%m-%d")
            if i == day
            else str(value)
            for i, value in enumerate(row[: len(keys)])
        )
        found.append((key, totals_row((None, *row[len(keys) :]))))
    return found


def recent(fetch: Fetch, limit: int, since: float | None, until: float | None, where: Filters) -> list[UsageRecord]:
    """The ``limit`` latest matching records, newest first (a backward scan of the time or user index)."""
    condition, params = where_sql(since, until, where)
    sql = f"SELECT {_QUOTED} FROM usage_records{condition} ORDER BY time DESC, record_id DESC LIMIT %s"
    return [from_row(row) for row in fetch(sql, [*params, limit])]
