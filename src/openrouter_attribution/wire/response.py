"""Parse OpenRouter completions and stream chunks into neutral values.

Responses are read as plain JSON dicts (the ``openai`` SDK is asked for
``object``, so no pydantic model is built for them) and parsed once here.
Shapes follow https://openrouter.ai/docs/api-reference/chat-completion and
../shared/OPENROUTER.md: ``usage`` carries tokens and ``cost`` (credits, USD),
top-level ``provider`` and ``model`` say who served the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from openrouter_attribution.errors import InvalidResponseError
from openrouter_attribution.wire.errors import parse_error_object

__all__ = [
    "Generation",
    "sent_attribution",
    "Completion",
    "Usage",
    "decimal_or_none",
    "int_or_none",
    "parse_chunk",
    "parse_completion",
    "parse_usage",
]


def decimal_or_none(value: Any) -> Decimal | None:
    """A finite ``Decimal`` for a JSON number (a cost), ``None`` for anything else."""
    if value is None or isinstance(value, bool):
        return None
    try:
        cost = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return cost if cost.is_finite() else None  # NaN or Infinity (Python's JSON reads them): not a cost


def int_or_none(value: Any) -> int | None:
    """``value`` when it is an int (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage and cost of one generation, as OpenRouter reported it.

    ``None`` means "not reported"; in particular an unknown ``cost`` is ``None``, never 0.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens served from the provider's prompt cache."""
    cache_write_tokens: int | None = None
    """Prompt tokens written to the prompt cache."""
    reasoning_tokens: int | None = None
    """Completion tokens spent on reasoning."""
    cost: Decimal | None = None
    """Credits charged for the call (USD)."""
    upstream_inference_cost: Decimal | None = None
    """What the upstream provider charged (for BYOK keys)."""
    is_byok: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (costs as strings, to keep them exact)."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value) if isinstance(value, Decimal) else value
        return out


def parse_usage(raw: Any, *, prompt: str = "prompt_tokens", completion: str = "completion_tokens") -> Usage | None:
    """Parse OpenRouter's ``usage`` object; ``None`` when absent.

    Args:
        raw: The ``usage`` object.
        prompt: The name of the prompt token count (``"input_tokens"`` in the Responses API), whose
            details are under ``<prompt>_details``.
        completion: The name of the completion token count (``"output_tokens"`` in the Responses API).
    """
    if not isinstance(raw, Mapping):
        return None
    prompt_details = raw.get(f"{prompt}_details") or {}
    completion_details = raw.get(f"{completion}_details") or {}
    cost_details = raw.get("cost_details") or {}
    is_byok = raw.get("is_byok")
    return Usage(
        prompt_tokens=int_or_none(raw.get(prompt)),
        completion_tokens=int_or_none(raw.get(completion)),
        total_tokens=int_or_none(raw.get("total_tokens")),
        cached_tokens=int_or_none(prompt_details.get("cached_tokens")),
        cache_write_tokens=int_or_none(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=int_or_none(completion_details.get("reasoning_tokens")),
        cost=decimal_or_none(raw.get("cost")),
        upstream_inference_cost=decimal_or_none(cost_details.get("upstream_inference_cost")),
        is_byok=is_byok if isinstance(is_byok, bool) else None,
    )


@dataclass(slots=True)
class Completion:
    """One non-streamed completion."""

    id: str | None
    """The generation id (also sent as the ``X-Generation-Id`` header)."""
    model: str | None
    """The model that actually served the call (may differ from the request with ``models`` fallbacks)."""
    provider: str | None
    """The upstream provider that served the call."""
    message: dict[str, Any]
    """The assistant message in OpenAI format: ``content``, ``tool_calls``, ``reasoning``, ``reasoning_details``."""
    finish_reason: str | None
    usage: Usage | None
    raw: dict[str, Any] = field(repr=False)
    """The whole response body."""


def _error_in_body(body: Mapping[str, Any]) -> None:
    error = body.get("error")
    if error:
        raise parse_error_object(error, generation_id=body.get("id"), in_stream=False)


def parse_completion(body: Any) -> Completion:
    """Parse a non-streamed ``chat.completion`` body.

    Raises:
        APIError: the body carries an ``error`` object (a failure after generation started,
            sent with HTTP 200), or the choice finished with ``finish_reason: "error"``.
        InvalidResponseError: the body is empty or does not have the shape of a completion.
    """
    if body is None or (isinstance(body, (str, bytes)) and not body.strip()):
        raise InvalidResponseError("OpenRouter answered with HTTP 200 and an empty body.")
    if not isinstance(body, dict):
        raise InvalidResponseError(f"OpenRouter sent a {type(body).__name__} where a JSON object was expected.")
    _error_in_body(body)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidResponseError("OpenRouter sent a completion without choices.")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise InvalidResponseError("OpenRouter sent a choice without a message.")
    finish_reason = choice.get("finish_reason")
    if finish_reason == "error":
        error = choice.get("error") or {"message": "The generation failed upstream (finish_reason: error)."}
        raise parse_error_object(error, generation_id=body.get("id"))
    return Completion(
        id=body.get("id"),
        model=body.get("model"),
        provider=body.get("provider"),
        message=message,
        finish_reason=finish_reason,
        usage=parse_usage(body.get("usage")),
        raw=body,
    )


_NO_DELTA: dict[str, Any] = {}


def parse_chunk(chunk: Any) -> tuple[dict[str, Any], str | None, Usage | None]:
    """Split one ``chat.completion.chunk`` into its delta, finish reason and usage.

    The delta is the chunk's own dict (OpenAI format: ``content``, ``tool_calls``,
    ``reasoning``, ``reasoning_details``); it is not copied.

    Raises:
        APIError: the chunk is an in-stream error event (``error`` object or
            ``finish_reason: "error"``).
        InvalidResponseError: the chunk is not a JSON object.
    """
    if not isinstance(chunk, dict):
        raise InvalidResponseError("OpenRouter sent a stream chunk that is not a JSON object.")
    error = chunk.get("error")
    if error:
        raise parse_error_object(error, generation_id=chunk.get("id"), in_stream=True)
    usage_raw = chunk.get("usage")
    usage = parse_usage(usage_raw) if usage_raw else None
    choices = chunk.get("choices")
    if not choices:
        return _NO_DELTA, None, usage
    choice = choices[0]
    finish_reason = choice.get("finish_reason")
    if finish_reason == "error":
        raise parse_error_object(
            choice.get("error") or {"message": "The generation failed upstream (finish_reason: error)."},
            generation_id=chunk.get("id"),
            in_stream=True,
        )
    return choice.get("delta") or _NO_DELTA, finish_reason, usage


class Generation(Protocol):
    """What both a :class:`Completion` and a finished stream's meta tell about a generation."""

    id: str | None
    model: str | None
    provider: str | None
    finish_reason: str | None
    usage: Usage | None


def sent_attribution(user: str | None, session_id: str | None) -> dict[str, str]:
    """The attribution that went out, as shown on responses (unset fields left out)."""
    sent = {"user": user, "session_id": session_id}
    return {key: value for key, value in sent.items() if value is not None}
