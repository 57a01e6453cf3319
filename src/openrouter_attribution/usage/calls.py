"""Turn one finished (or failed) model call into a :class:`UsageRecord` for a ledger."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.usage.records import UsageRecord

__all__ = ["record_call"]

_ABANDONED = "_Abandoned"


def record_call(
    ledger: Any,
    *,
    body: Mapping[str, Any],
    attribution: Attribution,
    started: float,
    first: float | None,
    source: Any,
    error: BaseException | None,
    framework: str,
) -> None:
    """Write the record of one call to ``ledger``; never raises into the model call.

    Args:
        ledger: Anything with ``record(UsageRecord)`` (a :class:`UsageLedger`).
        body: The request body that was sent.
        attribution: The attribution that was sent.
        started: ``time.perf_counter()`` when the call started.
        first: ``time.perf_counter()`` when the first stream chunk arrived, for streams.
        source: The parsed ``Completion`` or the stream's ``StreamMeta`` (``None`` if nothing arrived).
        error: The exception that ended the call, if any.
        framework: ``"langchain"`` or ``"llama_index"``.
    """
    now = time.perf_counter()
    usage = getattr(source, "usage", None)
    if error is None:
        outcome = "ok"
    elif type(error).__name__ == _ABANDONED:
        outcome = "abandoned"
    else:
        outcome = type(error).__name__
    record = UsageRecord(
        time=time.time() - (now - started),
        user=attribution.user,
        session_id=attribution.session_id,
        model_requested=body.get("model"),
        model_used=getattr(source, "model", None),
        provider=getattr(source, "provider", None),
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        cached_tokens=getattr(usage, "cached_tokens", None),
        reasoning_tokens=getattr(usage, "reasoning_tokens", None),
        cost=getattr(usage, "cost", None),
        latency_s=now - started,
        ttft_s=(first - started) if first is not None else None,
        generation_id=getattr(source, "id", None) or getattr(error, "generation_id", None),
        streamed=bool(body.get("stream")),
        outcome=outcome,
        framework=framework,
    )
    ledger.record(record)
