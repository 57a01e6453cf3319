"""The columns every SQL store holds, and records to and from rows (no SQL here).

Both backends store the same columns in the same order (:data:`COLUMNS`); how each column is typed is
the backend's business (``cost`` is exact TEXT in SQLite and ``NUMERIC`` in PostgreSQL; ``time`` is
epoch seconds in both, so a record reads back exactly as it was written).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from openrouter_attribution.usage.records import UsageRecord, UsageTotals, format_cost

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
)


def to_row(rec: UsageRecord, *, cost_as_text: bool) -> tuple[object, ...]:
    """The column values of ``rec``; ``cost`` as exact text (SQLite) or a Decimal (PostgreSQL)."""
    cost: object = rec.cost
    if cost_as_text and rec.cost is not None:
        cost = format_cost(rec.cost)
    return (
        rec.record_id,
        rec.time,
        rec.user,
        rec.session_id,
        rec.model_requested,
        rec.model_used,
        rec.provider,
        rec.prompt_tokens,
        rec.completion_tokens,
        rec.cached_tokens,
        rec.reasoning_tokens,
        cost,
        rec.latency_s,
        rec.ttft_s,
        rec.generation_id,
        rec.streamed,
        rec.outcome,
        rec.framework,
        rec.kind,
    )


def from_row(row: Sequence[object]) -> UsageRecord:
    """The record a row of :data:`COLUMNS` holds."""
    data = dict(zip(COLUMNS, row, strict=True))
    data["streamed"] = bool(data["streamed"])
    cost = data["cost"]
    if cost is not None and not isinstance(cost, Decimal):
        data["cost"] = Decimal(str(cost))
    return UsageRecord.from_dict(data)


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
