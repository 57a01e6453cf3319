"""Turn one finished (or failed) model call into a :class:`UsageRecord` for a ledger."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.usage.observed import USAGE_RECORD_ID, claim_record_id
from openrouter_attribution.usage.records import UsageRecord

__all__ = ["USAGE_RECORD_ID", "arecord_call", "build_call_record", "record_call"]

_ABANDONED = "_Abandoned"


def build_call_record(
    *,
    body: Mapping[str, Any],
    attribution: Attribution,
    started: float,
    first: float | None,
    source: Any,
    error: BaseException | None,
    framework: str,
    kind: str = "chat",
) -> UsageRecord:
    """The record of one call (see :func:`record_call` for the arguments).

    When the call failed, the record's id is attached to the error as ``usage_record_id``, so a usage
    handler that observes the same error writes the same record id (one row, not two).
    """
    # Runs once per model call: the error-only lookups stay off the common path.
    now = time.perf_counter()
    usage = getattr(source, "usage", None)
    streamed = bool(body.get("stream"))
    if error is None:
        outcome = "ok"
        generation_id = getattr(source, "id", None)
        record_id = ""
    else:
        outcome = "abandoned" if type(error).__name__ == _ABANDONED else type(error).__name__
        generation_id = getattr(source, "id", None) or getattr(error, "generation_id", None)
        record_id = getattr(error, USAGE_RECORD_ID, None) or ""
    if not record_id and streamed:
        record_id = claim_record_id(generation_id or uuid.uuid4().hex, started=started, model=body.get("model"))
    if usage is None:
        prompt = completion = cached = reasoning = cost = None
    else:  # getattr: a usage object of another shape must not break the call it records
        prompt, completion = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
        cached, reasoning = getattr(usage, "cached_tokens", None), getattr(usage, "reasoning_tokens", None)
        cost = getattr(usage, "cost", None)
    record = UsageRecord(
        time=time.time() - (now - started),
        user=attribution.user,
        session_id=attribution.session_id,
        model_requested=body.get("model"),
        model_used=getattr(source, "model", None),
        provider=getattr(source, "provider", None),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost=cost,
        latency_s=now - started,
        ttft_s=(first - started) if first is not None else None,
        generation_id=generation_id,
        streamed=streamed,
        outcome=outcome,
        framework=framework,
        kind=kind,
        record_id=record_id,
    )
    if error is not None:
        with contextlib.suppress(AttributeError, TypeError):  # an exception type that refuses attributes
            setattr(error, USAGE_RECORD_ID, record.record_id)
    return record


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
    kind: str = "chat",
) -> UsageRecord:
    """Write the record of one call to ``ledger`` and return it; never raises into the model call.

    Args:
        ledger: Anything with ``record(UsageRecord)`` (a :class:`UsageLedger`).
        body: The request body that was sent.
        attribution: The attribution that was sent.
        started: ``time.perf_counter()`` when the call started.
        first: ``time.perf_counter()`` when the first stream chunk arrived, for streams.
        source: The parsed ``Completion`` or the stream's ``StreamMeta`` (``None`` if nothing arrived).
        error: The exception that ended the call, if any.
        framework: ``"langchain"`` or ``"llama_index"``.
        kind: ``"chat"`` or ``"embeddings"``.
    """
    record = build_call_record(body=body, attribution=attribution, started=started, first=first,
                               source=source, error=error, framework=framework, kind=kind)  # fmt: skip
    ledger.record(record)
    return record


async def arecord_call(ledger: Any, **call: Any) -> UsageRecord:
    """Async :func:`record_call`: awaits ``ledger.arecord`` (the event loop keeps running while the
    record is committed); a ledger without ``arecord`` gets ``record``. Returns the record."""
    record = build_call_record(**call)
    arecord = getattr(ledger, "arecord", None)
    if arecord is None:
        ledger.record(record)
    else:
        await arecord(record)
    return record
