"""OpenRouter's wire shapes: completion bodies, stream chunks, usage and error bodies.

Pure functions from a :class:`~openrouter_attribution.testing.content.Completion`
to JSON-ready dicts and SSE bytes; no I/O. Shapes follow OpenRouter's API
reference and the response models of its official SDK (``ChatResult``,
``ChatStreamChunk``, ``ChatUsage``): https://openrouter.ai/docs/api-reference/overview
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from openrouter_attribution.testing.catalog import ModelInfo, compute_cost
from openrouter_attribution.testing.content import Completion, reasoning_signature

__all__ = [
    "SSE_COMMENT",
    "SSE_DONE",
    "GENERATION_NULL_FIELDS",
    "Envelope",
    "Usage",
    "build_chunks",
    "build_completion_body",
    "build_error_body",
    "build_failed_completion_body",
    "build_generation",
    "build_stream_error_chunk",
    "build_usage",
    "encode_json",
    "new_generation_id",
    "sse_event",
]

SSE_COMMENT = b": OPENROUTER PROCESSING\n\n"
"""The keep-alive comment OpenRouter sends on SSE streams (ignored by spec-compliant parsers)."""
SSE_DONE = b"data: [DONE]\n\n"
"""The last event of a successful stream."""
_WORDS_PER_CHUNK = 2
_MAX_CONTENT_CHUNKS = 64
_ALPHABET = string.ascii_letters + string.digits


def new_generation_id() -> str:
    """Return a unique generation id in OpenRouter's format, e.g. ``gen-1737300000-Xr8aTTb09gQnwKLuyA0N``."""
    return f"gen-{int(time.time())}-{''.join(secrets.choice(_ALPHABET) for _ in range(20))}"


def encode_json(payload: Any) -> bytes:
    """Encode ``payload`` as compact UTF-8 JSON (non-ASCII characters kept as-is, like OpenRouter)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def sse_event(payload: Any) -> bytes:
    """Encode ``payload`` as one SSE ``data:`` event."""
    return b"data: " + encode_json(payload) + b"\n\n"


def build_error_body(code: int, message: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return OpenRouter's error body ``{"error": {"code", "message", "metadata"}}``."""
    return {"error": {"code": code, "message": message, "metadata": metadata or {}}}


@dataclass(frozen=True)
class Envelope:
    """The fields every body and chunk of one generation shares."""

    model: str
    provider: str
    id: str = field(default_factory=new_generation_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def base(self, obj: str) -> dict[str, Any]:
        """Return the common top-level fields, with ``object`` set to ``obj``."""
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "object": obj,
            "created": self.created,
        }


@dataclass(frozen=True)
class Usage:
    """Token counts and cost of one generation (cost in US dollars)."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    cost: float
    prompt_cost: float
    completion_cost: float
    cache_discount: float = 0.0
    """What billing takes off ``cost`` for the cached prompt tokens (see :data:`CACHED_PROMPT_SHARE`)."""

    def to_payload(self) -> dict[str, Any]:
        """Return OpenRouter's ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost": self.cost,
            "is_byok": False,
            "prompt_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "cache_write_tokens": 0,
                "audio_tokens": 0,
                "video_tokens": 0,
            },
            "cost_details": {
                "upstream_inference_cost": self.cost,
                "upstream_inference_prompt_cost": self.prompt_cost,
                "upstream_inference_completions_cost": self.completion_cost,
            },
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "image_tokens": 0,
                "audio_tokens": 0,
            },
        }


CACHED_PROMPT_SHARE = Decimal("0.25")
"""The share of the prompt price the local server bills for a cached prompt token.

The rule that makes reconciliation testable offline: a response's ``usage.cost`` prices every prompt
token at the full prompt price (what was known at answer time), while ``GET /generation`` bills cached
prompt tokens at a quarter of it and reports the difference as ``cache_discount``:
``total_cost = usage.cost - cache_discount``, ``cache_discount = 0.75 x cached_tokens x prompt price``.
Prompt tokens are cached when the same ``user`` sends the same leading messages to the same model again
(:class:`~openrouter_attribution.testing.state.PromptCache`)."""


def build_usage(model: ModelInfo, prompt_tokens: int, cached_tokens: int, completion: Completion) -> Usage:
    """Return the usage of ``completion`` priced with ``model``'s catalog prices."""
    completion_tokens = completion.completion_tokens
    cost, prompt_cost, completion_cost = compute_cost(model, prompt_tokens, completion_tokens)
    cached = min(cached_tokens, prompt_tokens)
    discount = Decimal(model.prompt_price) * cached * (1 - CACHED_PROMPT_SHARE)
    return Usage(
        prompt_tokens,
        completion_tokens,
        completion.reasoning_tokens,
        cached,
        cost,
        prompt_cost,
        completion_cost,
        float(discount),
    )


def _reasoning_details(text: str, *, signature: str | None) -> list[dict[str, Any]]:
    detail: dict[str, Any] = {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}
    if signature is not None:
        detail["signature"] = signature
    return [detail]


def build_message(completion: Completion) -> dict[str, Any]:
    """Return the assistant ``message`` of a non-streaming completion."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.content or "", "refusal": None}
    if completion.reasoning and completion.reasoning_visible:
        message["reasoning"] = completion.reasoning
        signature = reasoning_signature(completion.reasoning)
        message["reasoning_details"] = _reasoning_details(completion.reasoning, signature=signature)
    else:
        message["reasoning"] = None
    if completion.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "index": i,
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for i, c in enumerate(completion.tool_calls)
        ]
    return message


def build_completion_body(envelope: Envelope, completion: Completion, usage: Usage) -> dict[str, Any]:
    """Return the body of a successful non-streaming chat completion."""
    choice = {
        "logprobs": None,
        "finish_reason": completion.finish_reason,
        "native_finish_reason": completion.native_finish_reason,
        "index": 0,
        "message": build_message(completion),
    }
    return {
        **envelope.base("chat.completion"),
        "choices": [choice],
        "system_fingerprint": None,
        "usage": usage.to_payload(),
    }


def build_failed_completion_body(
    envelope: Envelope, partial: str, error: dict[str, Any], usage: Usage
) -> dict[str, Any]:
    """Return a 200 body for a generation that failed after it started (``finish_reason: "error"``).

    OpenRouter reports errors that happen once the model is producing output in
    the body with HTTP 200 (https://openrouter.ai/docs/api-reference/errors):
    the top-level ``error`` object explains it, and the choice ends with
    ``finish_reason: "error"``, keeping the partial content.
    """
    choice = {
        "logprobs": None,
        "finish_reason": "error",
        "native_finish_reason": "error",
        "index": 0,
        "message": {"role": "assistant", "content": partial, "refusal": None, "reasoning": None},
    }
    return {
        **envelope.base("chat.completion"),
        "choices": [choice],
        "error": error,
        "usage": usage.to_payload(),
    }


def _chunk(envelope: Envelope, delta: dict[str, Any], finish: str | None = None, native: str | None = None) -> dict:
    choice = {
        "index": 0,
        "delta": delta,
        "finish_reason": finish,
        "native_finish_reason": native,
        "logprobs": None,
    }
    return {**envelope.base("chat.completion.chunk"), "choices": [choice]}


def build_stream_error_chunk(envelope: Envelope, error: dict[str, Any]) -> dict[str, Any]:
    """Return the SSE chunk that reports a mid-stream failure (HTTP status stays 200)."""
    chunk = _chunk(envelope, {"content": ""}, "error", "error")
    chunk["error"] = error
    return chunk


def split_text(text: str) -> list[str]:
    """Split ``text`` into a few deltas at word boundaries (joined they give ``text`` back)."""
    words = re.findall(r"\s*\S+\s*", text) or [text]
    size = max(_WORDS_PER_CHUNK, -(-len(words) // _MAX_CONTENT_CHUNKS))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _fragments(arguments: str) -> list[str]:
    if len(arguments) < 6:
        return [arguments]
    third = -(-len(arguments) // 3)
    return [arguments[i : i + third] for i in range(0, len(arguments), third)]


def _deltas(completion: Completion) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = []
    if completion.reasoning and completion.reasoning_visible:
        pieces = split_text(completion.reasoning)
        signature = reasoning_signature(completion.reasoning)
        for number, piece in enumerate(pieces, start=1):
            last = number == len(pieces)
            details = _reasoning_details(piece, signature=signature if last else None)
            deltas.append({"content": "", "reasoning": piece, "reasoning_details": details})
    if completion.content:
        deltas.extend({"content": piece} for piece in split_text(completion.content))
    for index, call in enumerate(completion.tool_calls):
        header = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append({"content": None, "tool_calls": [header]})
        for fragment in _fragments(call.arguments):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    if not deltas:
        deltas.append({"content": ""})
    deltas[0] = {"role": "assistant", **deltas[0]}
    return deltas


def build_chunks(envelope: Envelope, completion: Completion, usage: Usage) -> list[dict[str, Any]]:
    """Return every chunk of a successful stream, in order.

    Content and reasoning deltas first (the first delta has ``role: "assistant"``),
    then tool calls OpenAI-style (a first delta with ``index``, ``id``, ``type``,
    the function name and empty arguments, then argument fragments), then a chunk
    with ``finish_reason``, then a last chunk with empty ``choices`` and ``usage``.
    """
    chunks = [_chunk(envelope, delta) for delta in _deltas(completion)]
    finish = {"role": "assistant", "content": ""}
    chunks.append(_chunk(envelope, finish, completion.finish_reason, completion.native_finish_reason))
    chunks.append({**envelope.base("chat.completion.chunk"), "choices": [], "usage": usage.to_payload()})
    return chunks


GENERATION_NULL_FIELDS = (
    "app_id",
    "cache_discount",
    "moderation_latency",
    "num_media_prompt",
    "num_media_completion",
    "num_input_audio_prompt",
    "num_search_results",
    "num_fetches",
    "provider_responses",
    "preset_id",
    "router",
    "service_tier",
    "web_search_engine",
    "workspace_id",
    "request_id",
    "response_cache_source_id",
)
"""Fields of OpenRouter's ``GenerationResponse`` that the fake server always reports as ``null``."""


def build_generation(
    envelope: Envelope,
    usage: Usage,
    completion: Completion,
    *,
    user: str | None,
    session_id: str | None,
    headers: Mapping[str, str],
    streamed: bool,
    failed: bool,
) -> dict[str, Any]:
    """Return the ``data`` of ``GET /generation?id=...`` in OpenRouter's shape.

    Besides the fields of OpenRouter's ``GenerationResponse`` (where the end-user
    is ``external_user``), ``user`` repeats the request's ``user`` for convenience.
    ``total_cost`` is what is billed: ``usage.cost`` minus ``cache_discount`` (see
    :data:`CACHED_PROMPT_SHARE`). A generation that failed mid-way is ``cancelled``.
    """
    referer = headers.get("HTTP-Referer")
    billed = float(Decimal(str(usage.cost)) - Decimal(str(usage.cache_discount)))
    finish, native = ("error", "error") if failed else (completion.finish_reason, completion.native_finish_reason)
    return {
        "id": envelope.id,
        "upstream_id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "model": envelope.model,
        "provider_name": envelope.provider,
        "user": user,
        "external_user": user,
        "session_id": session_id,
        "created_at": datetime.fromtimestamp(envelope.created, tz=UTC).isoformat(),
        "streamed": streamed,
        "cancelled": failed,
        "finish_reason": finish,
        "native_finish_reason": native,
        "tokens_prompt": usage.prompt_tokens,
        "tokens_completion": usage.completion_tokens,
        "native_tokens_prompt": usage.prompt_tokens,
        "native_tokens_completion": usage.completion_tokens,
        "native_tokens_reasoning": usage.reasoning_tokens,
        "native_tokens_cached": usage.cached_tokens,
        "native_tokens_completion_images": 0,
        "total_cost": billed,
        "usage": billed,
        "upstream_inference_cost": billed,
        "is_byok": False,
        "origin": referer or "",
        "http_referer": referer,
        "user_agent": headers.get("User-Agent"),
        "api_type": "completions",
        "data_region": "global",
        "latency": 0.0,
        "generation_time": 0.0,
        **dict.fromkeys(GENERATION_NULL_FIELDS),
        "cache_discount": usage.cache_discount if usage.cached_tokens else None,
    }
