"""The SQLite store's dashboard reads: totals grouped by several keys in one pass, and the latest records.

Whole UTC days come from the daily rollup ``usage_daily`` (:mod:`.daily`), a few thousand rows a day, plus
the records still in ``usage_inbox`` (not in the rollup until folded); other reads scan the records.
Costs are summed exactly by the store's ``usage_decimal_sum`` aggregate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from openrouter_attribution.usage.records import TotalsBy, UsageRecord, UsageTotals, metadata_key
from openrouter_attribution.usage.stores.protocol import DAY, Filters, merged
from openrouter_attribution.usage.stores.rows import COLUMNS, from_row, totals_row
from openrouter_attribution.usage.stores.sqlite.daily import day_sql
from openrouter_attribution.usage.stores.sqlite.schema import INBOX_ONCE

__all__ = ["breakdown", "daily", "recent"]

Fetch = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]

_KEYS: dict[str, str] = {
    "user": "user",
    "model": "COALESCE(model_used, model_requested)",
    "day": day_sql("time"),
    "session": "session_id",
    "provider": "provider",
    "kind": "kind",
}
_DAILY_KEYS: dict[str, str] = {"user": "user", "model": "model", "day": "day", "provider": "provider", "kind": "kind"}
# Both sums in one order: requests, errors, the four token sums, records with a known cost (billed, else
# reported), with a reported cost, reconciled, user mismatches, the cost and the reported cost.
_RECORD_SUMS = ("COUNT(*), COALESCE(SUM(outcome NOT IN ('ok', 'abandoned')), 0), COALESCE(SUM(prompt_tokens), 0), "
                "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
                "COALESCE(SUM(reasoning_tokens), 0), COUNT(COALESCE(billed_cost, cost)), COUNT(cost), "
                "COUNT(billed_cost), COALESCE(SUM(user_mismatch), 0), usage_decimal_sum(COALESCE(billed_cost, cost)), "
                "usage_decimal_sum(cost)")  # fmt: skip
_DAILY_SUMS = ("SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), "
               "SUM(reasoning_tokens), SUM(priced), SUM(reported), SUM(reconciled), SUM(user_mismatches), "
               "usage_decimal_sum(cost), usage_decimal_sum(reported_cost)")  # fmt: skip
# The inbox holds no reconciliation columns, and a record once (INBOX_ONCE) that usage_records has not.
_INBOX = f"(SELECT *, NULL AS billed_cost, NULL AS user_mismatch FROM usage_inbox i WHERE {INBOX_ONCE})"


def column(name: str, keys: dict[str, str] = _KEYS) -> tuple[str, list[object]]:
    """The SQL of a group key or filter (a ``TOTALS_BY`` name or ``metadata.<key>``) and its parameters."""
    key = metadata_key(name)
    if key is None:
        return keys[name], []
    return "json_extract(metadata, ?)", [f'$."{key}"']  # metadata_key admits no '"'


def where_sql(since: float | None, until: float | None, where: Filters) -> tuple[str, list[object]]:
    """A condition on the records (``""`` for none) and its parameters."""
    return _condition("time", since, until, where, _KEYS)


def _condition(
    bound: str, since: float | None, until: float | None, where: Filters, keys: dict[str, str]
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append(f"{bound} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{bound} < ?")
        params.append(until)
    for name, value in where.items():
        sql, column_params = column(name, keys)
        clauses.append(f"{sql} = ?")
        params.extend((*column_params, value))
    return " AND ".join(clauses), params


def _totals(row: Sequence[Any]) -> UsageTotals:
    n, errors, prompt, completion, cached, reasoning, priced, reported, reconciled, mismatch, cost, reported_cost = row
    return totals_row((None, n, errors, prompt, completion, cached, reasoning, cost if priced else None, n - priced,
                       reported_cost if reported else None, reconciled, mismatch))  # fmt: skip


def _sums(
    fetch: Fetch, source: str, sums: str, by: Sequence[str], keys: dict[str, str], condition: tuple[str, list[object]]
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """One grouped SELECT of ``sums`` from ``source``; the day number of a ``day`` key as ``YYYY-MM-DD``."""
    columns = [column(name, keys) for name in by]
    head = "".join(f"{sql}, " for sql, _ in columns)
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(by)))}" if by else ""
    tail = f" WHERE {condition[0]}" if condition[0] else ""
    params = [*(param for _, key_params in columns for param in key_params), *condition[1]]
    found = []
    for row in fetch(f"SELECT {head}{sums} FROM {source}{tail}{group}", params):
        if not row[len(by)]:  # no requests: a group emptied by deletes, or SQL's row of zeros without GROUP BY
            continue
        key = tuple(None if value is None else _day(value) if name == "day" else str(value)
                    for name, value in zip(by, row, strict=False))  # fmt: skip
        found.append((key, _totals(row[len(by) :])))
    return found


@functools.lru_cache(maxsize=4096)
def _day(value: int) -> str:
    return datetime.fromtimestamp(value * DAY, tz=UTC).strftime("%Y-%m-%d")


def breakdown(
    fetch: Fetch, by: Sequence[TotalsBy | str], since: float | None, until: float | None, where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of the ``by`` keys from the records: one scan of ``usage_records`` and one of
    the inbox (the view ``usage_all`` costs a scan four times as long)."""
    condition = where_sql(since, until, where)
    return merged(row for source in ("usage_records", _INBOX)
                  for row in _sums(fetch, source, _RECORD_SUMS, by, _KEYS, condition))  # fmt: skip


def daily(
    fetch: Fetch, by: Sequence[TotalsBy | str], first: int | None, end: int | None, where: Filters
) -> list[tuple[tuple[str | None, ...], UsageTotals]]:
    """Totals per combination of the ``by`` keys over the UTC days ``first`` to ``end`` (day numbers, ``end``
    excluded, ``None`` open): the rollup's rows, and the inbox's records of those days."""
    days = _condition("day", first, end, where, _DAILY_KEYS)
    rollup = _sums(fetch, "usage_daily", _DAILY_SUMS, by, _DAILY_KEYS, days)
    since, until = (None if first is None else first * DAY), (None if end is None else end * DAY)
    return merged([*rollup, *_sums(fetch, _INBOX, _RECORD_SUMS, by, _KEYS, where_sql(since, until, where))])


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
