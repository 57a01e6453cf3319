"""The columns every SQL store holds, and records to and from rows (no SQL here).

Both backends store the same columns in the same order (:data:`COLUMNS`); how each column is typed is
the backend's business (``cost`` is exact TEXT in SQLite and ``NUMERIC`` in PostgreSQL; ``time`` is
epoch seconds in both, so a record reads back exactly as it was written).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from decimal import Decimal

from openrouter_attribution.usage.records import (
    FIELDS,
    UsageRecord,
    UsageTotals,
    format_cost,
    metadata_from_json,
    metadata_json,
)

__all__ = ["COLUMNS", "from_row", "to_row", "totals_row"]

COLUMNS: tuple[str, ...] = (
    "record_id",
    "time",
    "user",
    "session_id",
    "model_requested",
    "model_used",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "latency_s",
    "ttft_s",
    "generation_id",
    "streamed",
    "outcome",
    "framework",
    "kind",
    "metadata",
)


# A record's values in COLUMNS order (one C call).
_TO_COLUMNS = operator.itemgetter(*(FIELDS.index(name) for name in COLUMNS))
_COST = COLUMNS.index("cost")
_METADATA = COLUMNS.index("metadata")


def to_row(rec: UsageRecord, *, cost_as_text: bool) -> tuple[object, ...]:
    """The column values of ``rec``; ``cost`` as exact text (SQLite) or a Decimal (PostgreSQL), the
    metadata as JSON text."""
    row: tuple[object, ...] = _TO_COLUMNS(rec)
    cost = rec.cost
    if cost_as_text and cost is not None:
        row = (*row[:_COST], format_cost(cost), *row[_COST + 1 :])
    if rec.metadata is not None:
        row = (*row[:_METADATA], metadata_json(rec.metadata), *row[_METADATA + 1 :])
    return row


def from_row(row: Sequence[object]) -> UsageRecord:
    """The record a row of :data:`COLUMNS` holds (``cost`` as text or a number, ``streamed`` as 0 or 1, the
    metadata as JSON text or a dict)."""
    data = dict(zip(COLUMNS, row, strict=True))
    data["streamed"] = bool(data["streamed"])
    data["metadata"] = metadata_from_json(data["metadata"])
    return UsageRecord(**data)  # type: ignore[arg-type]


def totals_row(row: Sequence[object]) -> UsageTotals:
    """A :class:`UsageTotals` from ``(key, requests, errors, prompt, completion, cached, reasoning, cost,
    unknown_cost_requests, reported_cost, reconciled, user_mismatches)`` as both backends select them."""
    key, n, errors, prompt, completion, cached, reasoning, cost, unknown, reported, reconciled, mismatches = row
    return UsageTotals(
        key=None if key is None else str(key),
        requests=int(n),  # type: ignore[call-overload]
        errors=int(errors),  # type: ignore[call-overload]
        prompt_tokens=int(prompt),  # type: ignore[call-overload]
        completion_tokens=int(completion),  # type: ignore[call-overload]
        cached_tokens=int(cached),  # type: ignore[call-overload]
        reasoning_tokens=int(reasoning),  # type: ignore[call-overload]
        cost=None if cost is None else Decimal(str(cost)),
        unknown_cost_requests=int(unknown),  # type: ignore[call-overload]
        reported_cost=None if reported is None else Decimal(str(reported)),
        reconciled=int(reconciled),  # type: ignore[call-overload]
        user_mismatches=int(mismatches),  # type: ignore[call-overload]
    )
