"""The SQLite store's dashboard reads: totals grouped by several keys in one pass, and the latest records.

Exact costs, fast: the store's ``usage_decimal_sum`` aggregate is a Python call per row (about 1.5 s
per cost column on a million records). These reads sum costs in SQL as integers of 10⁻¹² USD,
``round(cost * 1e12)`` in doubles, which is the exact integer for a cost of at most 12 decimals under
2,000 USD; each group also reads its largest number of decimals and its largest cost, and a group
beyond either (or a sum past 64-bit integers) makes the read run again with ``usage_decimal_sum``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from openrouter_attribution.usage.records import TotalsBy, UsageRecord, UsageStoreError, UsageTotals, metadata_key
from openrouter_attribution.usage.stores.protocol import Filters, combine
from openrouter_attribution.usage.stores.rows import COLUMNS, from_row, totals_row
from openrouter_attribution.usage.stores.sqlite.schema import INBOX_ONCE

__all__ = ["breakdown", "recent"]

Fetch = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]

# The UTC day as a day number (integer arithmetic, several times faster than strftime on every row);
# the rare time before 1970 takes strftime's text. Both become YYYY-MM-DD in _day.
_DAY = ("CASE WHEN time >= 0 THEN CAST(time AS INTEGER) / 86400 ELSE strftime('%Y-%m-%d', "
        "CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)), 'unixepoch') END")  # fmt: skip
_KEYS: dict[str, str] = {
    "user": "user",
    "model": "COALESCE(model_used, model_requested)",
    "day": _DAY,
    "session": "session_id",
    "provider": "provider",
    "kind": "kind",
}
_MAX_DECIMALS = 12
_MAX_ABS = 2000.0
"""Below 2,000 USD a record (and 12 decimals), ``round(cost * 1e12)`` in doubles is the exact integer:
the product stays under 2⁵¹, where a double's rounding error is under 0.5."""


def _pico(column: str) -> str:
    """A cost text as an integer of 10⁻¹² USD (exact within :data:`_MAX_DECIMALS` and :data:`_MAX_ABS`)."""
    return f"CAST(round(CAST({column} AS REAL) * 1e12) AS INTEGER)"


def _decimals(column: str) -> str:
    """The decimals of a cost text (``format_cost`` writes plain notation; more when it has no point)."""
    return f"length({column}) - instr({column}, '.')"


_COUNTS = ("COUNT(*), COALESCE(SUM(outcome NOT IN ('ok', 'abandoned')), 0), COALESCE(SUM(prompt_tokens), 0), "
           "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
           "COALESCE(SUM(reasoning_tokens), 0), COUNT(COALESCE(billed_cost, cost)), COUNT(cost), COUNT(billed_cost), "
           "COALESCE(SUM(user_mismatch), 0)")  # fmt: skip
# The billed cost only on reconciled rows: most rows pay for one cost column, not two.
_FAST_SUMS = (f"SUM({_pico('cost')}), SUM(CASE WHEN billed_cost IS NOT NULL THEN {_pico('billed_cost')} - "
              f"COALESCE({_pico('cost')}, 0) END), MAX(COALESCE(MAX({_decimals('cost')}), 0), "
              f"COALESCE(MAX({_decimals('billed_cost')}), 0)), MAX(COALESCE(MAX(abs(CAST(cost AS REAL))), 0), "
              "COALESCE(MAX(abs(CAST(billed_cost AS REAL))), 0))")  # fmt: skip
_EXACT_SUMS = "usage_decimal_sum(cost), usage_decimal_sum(COALESCE(billed_cost, cost)), 0, 0"
# The inbox holds no reconciliation columns, and a record once (INBOX_ONCE) that usage_records has not.
_INBOX = f"(SELECT *, NULL AS billed_cost, NULL AS user_mismatch FROM usage_inbox i WHERE {INBOX_ONCE})"


def column(name: str) -> tuple[str, list[object]]:
    """The SQL of a group key or filter (a ``TOTALS_BY`` name or ``metadata.<key>``) and its parameters."""
    key = metadata_key(name)
    if key is None:
        return _KEYS[name], []
    return "json_extract(metadata, ?)", [f'$."{key}"']  # metadata_key admits no '"'


def where_sql(since: float | None, until: float | None, where: Filters) -> tuple[str, list[object]]:
    """A condition on the view ``usage_all`` (``""`` for none) and its parameters."""
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("time >= ?")
        params.append(since)
    if until is not None:
        clauses.append("time < ?")
        params.append(until)
    for name, value in where.items():
        sql, column_params = column(name)
        clauses.append(f"{sql} = ?")
        params.extend((*column_params, value))
    return " AND ".join(clauses), params


def _day(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return datetime.fromtimestamp(int(value) * 86400, tz=UTC).strftime("%Y-%m-%d")  # type: ignore[call-overload]


def _usd(pico: object) -> Decimal:
    return Decimal(int(pico)).scaleb(-_MAX_DECIMALS)  # type: ignore[call-overload]


def _totals(row: Sequence[Any], exact: bool) -> UsageTotals:
    n, errors, prompt, completion, cached, reasoning, known, known_reported, reconciled, mismatch, a, b, _, _ = row
    if exact:  # decimal text from usage_decimal_sum
        reported, cost = (None if a is None else Decimal(a)), (None if b is None else Decimal(b))
    else:  # integers of 10⁻¹² USD; NULL sums only where no value was known
        reported = _usd(a) if known_reported else None
        cost = _usd((a or 0) + (b or 0)) if known else None
    return totals_row((None, n, errors, prompt, completion, cached, reasoning, cost, n - known, reported,
                       reconciled, mismatch))  # fmt: skip


def _fast_is_exact(rows: list[tuple[Any, ...]]) -> bool:
    return all(row[-2] <= _MAX_DECIMALS and row[-1] < _MAX_ABS for row in rows)


def _scan(
    fetch: Fetch, keys: list[str], condition: str, params: list[object]
) -> list[tuple[tuple[Any, ...], UsageTotals]]:
    head = "".join(f"{key}, " for key in keys)
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
    found: list[tuple[tuple[Any, ...], UsageTotals]] = []
    for source in ("usage_records", _INBOX):
        tail = f" WHERE {condition}" if condition else ""
        rows: list[tuple[Any, ...]] | None = None
        try:
            rows = fetch(f"SELECT {head}{_COUNTS}, {_FAST_SUMS} FROM {source}{tail}{group}", params)
        except UsageStoreError as err:  # a sum past 64-bit integers: the exact aggregate instead
            if not isinstance(err.__cause__, sqlite3.OperationalError) or "overflow" not in str(err).lower():
                raise
        exact = rows is None or not _fast_is_exact(rows)
        if exact:
            rows = fetch(f"SELECT {head}{_COUNTS}, {_EXACT_SUMS} FROM {source}{tail}{group}", params)
        # Without group keys SQL answers one row of zeros when nothing matches: no group, as in Python.
        found.extend((row[: len(keys)], _totals(row[len(keys) :], exact)) for row in rows or [] if row[len(keys)])
    return found


def breakdown(
    fetch: Fetch, by: Sequence[TotalsBy | str], since: float | None, until: float | None, where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of the ``by`` keys, in one scan of ``usage_records`` and one of the inbox
    (the view ``usage_all`` costs a scan four times as long); see the module docstring for the costs."""
    columns = [column(name) for name in by]
    keys = [sql for sql, _ in columns]
    condition, params = where_sql(since, until, where)
    params = [*(param for _, key_params in columns for param in key_params), *params]
    day = by.index("day") if "day" in by else -1
    merged: dict[tuple[str | None, ...], UsageTotals] = {}
    for raw, totals in _scan(fetch, keys, condition, params):
        key = tuple(_day(value) if i == day else (None if value is None else str(value)) for i, value in enumerate(raw))
        earlier = merged.get(key)
        merged[key] = totals if earlier is None else combine(None, (earlier, totals))
    return list(merged.items())


def recent(fetch: Fetch, limit: int, since: float | None, until: float | None, where: Filters) -> list[UsageRecord]:
    """The ``limit`` latest matching records, newest first: both tables as one compound SELECT, so the
    LIMIT stops the backward scan of an index (time, or user and time) after ``limit`` rows."""
    condition, params = where_sql(since, until, where)
    columns = ", ".join(COLUMNS)
    records = f" WHERE {condition}" if condition else ""
    inbox = f" WHERE {condition} AND {INBOX_ONCE}" if condition else f" WHERE {INBOX_ONCE}"
    sql = (f"SELECT {columns} FROM usage_records{records} UNION ALL SELECT {columns} FROM usage_inbox i{inbox} "
           "ORDER BY time DESC, record_id DESC LIMIT ?")  # fmt: skip
    return [from_row(row) for row in fetch(sql, [*params, *params, limit])]
