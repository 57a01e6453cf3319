"""Turn one finished (or failed) model call into a :class:`UsageRecord` for a ledger."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.usage.handler_records import USAGE_RECORD_ID, claim_record_id, outcome_of
from openrouter_attribution.usage.records import UsageRecord, record_from_fields

__all__ = ["USAGE_RECORD_ID", "arecord_call", "build_call_record", "record_call"]


def build_call_record(
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
    # Runs once per model call, with caches the HTTP call has just evicted: the error-only lookups stay
    # off the common path, and the record is one tuple built from values the wire parsers checked
    # (``cost`` a finite Decimal or None, ``kind`` one of KINDS), not a pass through the checking constructor.
    now = time.perf_counter()
    if source is None:  # nothing arrived
        generation_id = model_used = provider = usage = None
    else:  # a Completion, a StreamMeta, an EmbeddingResult or a RerankResult
        generation_id, model_used, provider, usage = source.id, source.model, source.provider, source.usage
    streamed = bool(body.get("stream"))
    if error is None:
        outcome = "ok"
        record_id = None
    else:
        outcome = outcome_of(error)
        generation_id = generation_id or getattr(error, "generation_id", None)
        record_id = getattr(error, USAGE_RECORD_ID, None)
    if streamed and not record_id:
        record_id = claim_record_id(generation_id or uuid.uuid4().hex, started=started, model=body.get("model"))
    if usage is None:
        prompt = completion = cached = reasoning = cost = None
    else:
        prompt, completion, cost = usage.prompt_tokens, usage.completion_tokens, usage.cost
        cached, reasoning = usage.cached_tokens, usage.reasoning_tokens
    record = record_from_fields(UsageRecord, (
        time.time() - (now - started), attribution.user, attribution.session_id, body.get("model"), model_used,
        provider, prompt, completion, cached, reasoning, cost, now - started,
        None if first is None else first - started, generation_id, streamed, outcome, framework, kind,
        dict(attribution.metadata) if attribution.metadata else None, record_id or generation_id or uuid.uuid4().hex,
    ))  # fmt: skip
    if error is not None:
        with contextlib.suppress(AttributeError, TypeError):  # an exception type that refuses attributes
            setattr(error, USAGE_RECORD_ID, record.record_id)
    return record


def record_call(
    ledger: Any,
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
        kind: ``"chat"``, ``"responses"``, ``"embeddings"`` or ``"rerank"``.
    """
    record = build_call_record(body, attribution, started, first, source, error, framework, kind)
    ledger.record(record)
    return record


async def arecord_call(ledger: Any, *call: Any) -> UsageRecord:
    """Async :func:`record_call` (the same arguments): awaits ``ledger.arecord`` (the event loop keeps
    running while the record is committed); a ledger without ``arecord`` gets ``record``. Returns the record."""
    record = build_call_record(*call)
    arecord = getattr(ledger, "arecord", None)
    if arecord is None:
        ledger.record(record)
    else:
        await arecord(record)
    return record
