"""Build the body of ``POST /chat/completions`` from neutral parts.

Messages arrive already in OpenAI chat format (the adapters convert their
framework's messages); this module adds the model's parameters, the per-call
overrides and the attribution fields, and checks OpenRouter's documented
limits before anything is sent (https://openrouter.ai/docs/api-reference/chat-completion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.errors import AttributionError, ConfigurationError
from openrouter_attribution.identity import validate_user_id

__all__ = [
    "MAX_METADATA_KEY_LENGTH",
    "MAX_METADATA_PAIRS",
    "MAX_METADATA_VALUE_LENGTH",
    "REQUEST_FIELDS",
    "apply_overrides",
    "build_attribution_fields",
    "build_body",
    "check_parameter_ranges",
    "check_request_fields",
]

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_VALUE_LENGTH = 512

# Every chat-completion body field OpenRouter documents (see ../shared/OPENROUTER.md and
# https://openrouter.ai/docs/api-reference/parameters). Anything else must go through `extra_body`.
REQUEST_FIELDS = frozenset(
    {
        "model", "models", "messages", "stream", "stream_options",
        "temperature", "top_p", "top_k", "min_p", "top_a", "frequency_penalty", "presence_penalty",
        "repetition_penalty", "seed", "max_tokens", "max_completion_tokens", "stop", "logit_bias",
        "logprobs", "top_logprobs", "n", "response_format", "structured_outputs", "tools", "tool_choice",
        "parallel_tool_calls", "prediction", "provider", "route", "reasoning", "plugins", "transforms",
        "usage", "user", "session_id", "trace", "metadata", "modalities", "verbosity", "debug",
    }
)  # fmt: skip


# OpenRouter's documented ranges (https://openrouter.ai/docs/api-reference/parameters): (lowest, highest),
# both inclusive, None for no bound.
PARAMETER_RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0, 2), "top_p": (0, 1), "top_k": (0, None), "min_p": (0, 1), "top_a": (0, 1),
    "frequency_penalty": (-2, 2), "presence_penalty": (-2, 2), "repetition_penalty": (0, 2),
    "max_tokens": (1, None), "max_completion_tokens": (1, None), "top_logprobs": (0, 20),
}  # fmt: skip


def check_parameter_ranges(params: Mapping[str, Any], *, where: str) -> None:
    """Raise :class:`ConfigurationError` for a sampling parameter outside OpenRouter's documented range.

    Args:
        params: Request fields by name (``None`` values are not sent, so not checked).
        where: Where they were set, for the message (e.g. ``"set on the model"``).
    """
    for name, (low, high) in PARAMETER_RANGES.items():
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(f"{name} must be a number ({where}), got {type(value).__name__}.")
        if (low is not None and value < low) or (high is not None and value > high):
            accepted = f"{low} to {high}" if high is not None else f"{low} or more"
            raise ConfigurationError(f"{name}={value!r} ({where}) is out of range: OpenRouter accepts {accepted}.")


def check_request_fields(params: Mapping[str, Any], *, where: str) -> None:
    """Raise :class:`ConfigurationError` for a parameter OpenRouter does not document.

    Args:
        params: Parameter names to check.
        where: Where they came from, for the message (e.g. ``"invoke() keyword"``).
    """
    unknown = [name for name in params if name not in REQUEST_FIELDS]
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ConfigurationError(
            f"Unknown OpenRouter request parameter(s) {names} ({where}). Check the spelling, or pass "
            "fields OpenRouter accepts but this library does not know yet through extra_body={...}."
        )


def _check_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(metadata, Mapping):
        raise AttributionError(f"metadata must be a mapping of strings, got {type(metadata).__name__}.")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise AttributionError(f"metadata has {len(metadata)} pairs; OpenRouter accepts at most {MAX_METADATA_PAIRS}.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise AttributionError(
                f"metadata keys must be non-empty strings of at most {MAX_METADATA_KEY_LENGTH} characters; "
                f"one key has {len(key) if isinstance(key, str) else type(key).__name__}."
            )
        if not isinstance(value, str):
            raise AttributionError(
                f"metadata[{key!r}] must be a string (OpenRouter accepts string values only), "
                f"got {type(value).__name__}."
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise AttributionError(
                f"metadata[{key!r}] has {len(value)} characters; OpenRouter accepts at most "
                f"{MAX_METADATA_VALUE_LENGTH}."
            )
    return dict(metadata)


def build_attribution_fields(attribution: Attribution, *, send_metadata: bool = True) -> dict[str, Any]:
    """The body fields for an attribution whose ``user`` already passed the identity policy.

    ``send_metadata=False`` for endpoints that take no ``metadata`` (``/embeddings``, ``/rerank``): it is
    still checked, since the ledger keeps it, but not sent.

    Raises:
        AttributionError: ``session_id``, ``trace`` or ``metadata`` breaks OpenRouter's limits.
    """
    fields: dict[str, Any] = {}
    if attribution.user is not None:
        fields["user"] = attribution.user
    if attribution.session_id is not None:
        fields["session_id"] = validate_user_id(attribution.session_id, field="session_id")
    if attribution.trace is not None:
        if not isinstance(attribution.trace, Mapping):
            raise AttributionError(f"trace must be a mapping, got {type(attribution.trace).__name__}.")
        if attribution.trace:
            fields["trace"] = dict(attribution.trace)
    if attribution.metadata is not None and attribution.metadata:
        metadata = _check_metadata(attribution.metadata)
        if send_metadata:
            fields["metadata"] = metadata
    return fields


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model's parameters with a call's overrides on top (a ``None`` override removes the parameter)."""
    body: dict[str, Any] = {**params}
    if overrides:
        for key, value in overrides.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
    return body


def build_body(
    *,
    messages: list[dict[str, Any]],
    params: Mapping[str, Any],
    overrides: Mapping[str, Any] | None,
    attribution_fields: Mapping[str, Any],
    stream: bool,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the request body.

    Args:
        messages: Messages in OpenAI chat format.
        params: The model's configured parameters (``model`` included), ``None`` values removed.
        overrides: Per-call parameters; they win over ``params``. ``None`` values remove a parameter.
        attribution_fields: Output of :func:`build_attribution_fields`.
        stream: Whether to ask for a server-sent-event stream.
        extra_body: Fields sent as they are, last (an escape hatch for new OpenRouter fields).
    """
    body = apply_overrides(params, overrides)
    body["messages"] = messages
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    body.update(attribution_fields)
    if extra_body:
        body.update(extra_body)
    return body
