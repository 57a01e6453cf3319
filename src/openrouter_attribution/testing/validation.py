"""Validation of chat request bodies against OpenRouter's published request schema.

What is checked, in this order:

1. **The schema**, using the official OpenRouter SDK's pydantic model
   ``openrouter.components.ChatRequest`` (``pip install openrouter``, part of the
   ``testing`` extra). The body is validated as JSON in *strict* mode, so
   ``"max_tokens": "5"`` or ``"stream": "yes"`` are rejected as OpenRouter does.
   The SDK model checks: ``messages`` (required; each message by ``role``:
   ``system`` / ``developer`` / ``user`` / ``assistant`` / ``tool``, with
   ``content`` strings or content parts such as ``text``, ``image_url``,
   ``input_audio``, ``file``; assistant ``tool_calls``, ``reasoning``,
   ``reasoning_details``; tool ``tool_call_id``), the types of ``model``,
   ``models``, ``user``, ``session_id``, ``trace`` (an object, extra keys
   allowed), ``metadata`` (string values), ``provider``, ``plugins`` (by ``id``),
   ``response_format`` (by ``type``; ``json_schema`` needs ``name``),
   ``tools``, ``tool_choice`` (``none`` / ``auto`` / ``required`` / a named
   function; LangChain's ``"any"`` is *not* valid), ``parallel_tool_calls``,
   ``stop``, ``seed``, ``top_k``, ``min_p``, ``top_a``, ``repetition_penalty``,
   ``logprobs``, ``top_logprobs``, ``max_tokens``, ``max_completion_tokens``,
   ``stream``, ``stream_options``, ``temperature``, ``top_p``, ``prediction``
   and the enum of ``reasoning.effort``. The SDK model ignores keys it does not
   know (``route``, ``transforms``, ``reasoning.max_tokens``,
   ``reasoning.exclude``, ``reasoning.enabled``), and it does not enforce the
   documented size limits.
2. **What this module adds**: ``user`` and ``session_id`` at most 256
   characters; ``metadata`` at most 16 pairs, keys at most 64 characters, string
   values at most 512 characters; ``messages`` not empty; ``models`` a list of
   strings; ``reasoning.max_tokens`` a non-negative integer, ``reasoning.exclude``
   and ``reasoning.enabled`` booleans; ``route`` a string and ``transforms`` a
   list of strings; every ``function`` tool has a ``name`` (letters, digits,
   ``_``, ``-``, at most 64) and object ``parameters``; a named ``tool_choice``
   names one of the ``tools``; the sampling parameters within OpenRouter's
   documented ranges (``temperature`` 0 to 2, ``top_p``, ``min_p`` and ``top_a``
   0 to 1, ``frequency_penalty`` and ``presence_penalty`` -2 to 2,
   ``repetition_penalty`` 0 to 2, ``top_k`` 0 or more, ``max_tokens`` and
   ``max_completion_tokens`` 1 or more, ``top_logprobs`` 0 to 20).
3. **The model ids**, for every endpoint (:func:`unknown_model_ids`, called by the
   server before any route): each id in ``model`` and ``models`` must be in the
   server's catalog (see :mod:`~openrouter_attribution.testing.catalog`) or a
   reserved fault id, else OpenRouter's ``"<id> is not a valid model ID"``.

The SDK is required: without it the server refuses to start
(:func:`require_schema`) rather than validate less in silence.

Every failure raises :class:`RequestValidationError`, whose message names the
offending field; the server turns it into OpenRouter's 400 error body.
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openrouter_attribution.testing.catalog import Catalog

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_METADATA_KEY",
    "MAX_METADATA_PAIRS",
    "MAX_METADATA_VALUE",
    "RequestValidationError",
    "check_id_lengths",
    "check_metadata_limits",
    "require_schema",
    "unknown_model_ids",
    "validate_chat_request",
    "validate_with_model",
]

TESTING_EXTRA = 'pip install "openrouter-attribution[testing]"'

MAX_ID_LENGTH = 256
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# https://openrouter.ai/docs/api-reference/parameters: (lowest, highest), inclusive, None for no bound.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0, 2), "top_p": (0, 1), "top_k": (0, None), "min_p": (0, 1), "top_a": (0, 1),
    "frequency_penalty": (-2, 2), "presence_penalty": (-2, 2), "repetition_penalty": (0, 2),
    "max_tokens": (1, None), "max_completion_tokens": (1, None), "top_logprobs": (0, 20),
}  # fmt: skip
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FAULT_MODEL_PREFIX = "fake/fault-"  # see testing.faults (not imported: faults imports the catalog)


class RequestValidationError(ValueError):
    """A chat request body breaks OpenRouter's schema or documented limits.

    Attributes:
        field: Dotted path of the offending field (``""`` for the whole body).
        message: Human-readable description, naming the field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def validate_chat_request(body: Any) -> None:
    """Validate a parsed ``POST /chat/completions`` body.

    Args:
        body: The JSON-decoded request body.

    Raises:
        RequestValidationError: The body is invalid; the message names the field.
    """
    if not isinstance(body, dict):
        raise RequestValidationError("", "Request body must be a JSON object")
    _validate_with_sdk(body)
    _check_limits(body)
    _check_ranges(body)
    _check_models_list(body)
    _check_reasoning(body)
    _check_tools(body)


@functools.cache
def require_schema() -> Any:
    """The official OpenRouter SDK's ``ChatRequest`` model, which the server validates requests with.

    Raises:
        ModuleNotFoundError: The ``openrouter`` package (the ``testing`` extra) is not installed; the
            message names the extra. The server never falls back to weaker checks.
    """
    try:
        from openrouter.components import ChatRequest
    except ImportError as err:
        raise ModuleNotFoundError(
            "FakeOpenRouter validates requests with the official OpenRouter SDK's request schema "
            f"(the `openrouter` package), which is not installed. Install the testing extra: {TESTING_EXTRA}",
            name="openrouter",
        ) from err
    return ChatRequest


def _validate_with_sdk(body: dict[str, Any]) -> None:
    """Validate with the SDK's ``ChatRequest`` in strict mode."""
    from pydantic import ValidationError

    try:
        require_schema().model_validate_json(json.dumps(body), strict=True)
    except ValidationError as err:
        raise _from_pydantic(body, err.errors()) from err


def validate_with_model(model: Any, body: Any) -> None:
    """Validate ``body`` with one of the SDK's request models (``model``), in strict mode.

    Raises:
        RequestValidationError: the body is not an object or breaks the model; the message names the field.
    """
    from pydantic import ValidationError

    if not isinstance(body, dict):
        raise RequestValidationError("", "Request body must be a JSON object")
    try:
        model.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as err:
        raise _from_pydantic(body, err.errors()) from err


def unknown_model_ids(body: dict[str, Any], catalog: Catalog) -> list[str]:
    """The ids in ``model`` and ``models`` that OpenRouter would refuse, in order.

    Reserved fault ids (``fake/fault-<name>``) are known; values that are not strings are left to
    the schema validation, which names their type.
    """
    ids = [body.get("model")]
    models = body.get("models")
    if isinstance(models, list):
        ids += models
    return [
        model_id
        for model_id in ids
        if isinstance(model_id, str) and not model_id.startswith(_FAULT_MODEL_PREFIX) and catalog.get(model_id) is None
    ]


def _from_pydantic(body: dict[str, Any], errors: list[Any]) -> RequestValidationError:
    """Turn pydantic errors into one error naming the first offending field."""
    # `Unset` branches are the SDK's sentinel for "field omitted", never a form a client can send.
    errors = [e for e in errors if "Unset" not in e["loc"]] or errors
    paths = [_data_path(body, error) for error in errors]
    first = paths[0]
    messages = list(
        dict.fromkeys(
            str(e["msg"]).replace(" found using <lambda>()", "")
            for e, p in zip(errors, paths, strict=True)
            if p == first
        )
    )
    label = first or "body"
    if len(messages) == 1:
        return RequestValidationError(first, f"Invalid value for '{label}': {messages[0]}")
    return RequestValidationError(
        first, f"Invalid value for '{label}': matches none of the allowed forms ({'; '.join(messages)[:300]})"
    )


def _data_path(body: Any, error: Any) -> str:
    """Keep the parts of a pydantic ``loc`` that index into the data, dropping union branch tags."""
    parts: list[str] = []
    current: Any = body
    loc = list(error["loc"])
    for position, key in enumerate(loc):
        if _indexes(current, key):
            current = current[key]
        elif not (error["type"] == "missing" and position == len(loc) - 1):
            continue
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(parts).lstrip(".")


def _indexes(current: Any, key: Any) -> bool:
    """Whether ``current[key]`` exists in the data (as opposed to being a union branch tag)."""
    if isinstance(current, dict):
        return isinstance(key, str) and key in current
    return isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current)


def _check_limits(body: dict[str, Any]) -> None:
    if not body.get("messages"):
        raise RequestValidationError("messages", "Invalid value for 'messages': at least one message is required")
    check_id_lengths(body)
    check_metadata_limits(body)


def check_metadata_limits(body: dict[str, Any], *, bracket_keys: bool = True) -> None:
    """``metadata``: at most 16 pairs, keys of at most 64 characters, string values of at most 512.

    Args:
        body: The request body.
        bracket_keys: Whether keys may contain ``[`` or ``]`` (the Responses API refuses them).

    Raises:
        RequestValidationError: a limit is broken; the message names the field.
    """
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return
    if len(metadata) > MAX_METADATA_PAIRS:
        raise RequestValidationError(
            "metadata", f"'metadata' may hold at most {MAX_METADATA_PAIRS} pairs (got {len(metadata)})"
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise RequestValidationError(
                "metadata",
                f"'metadata' keys must be at most {MAX_METADATA_KEY} characters (key {key[:20]!r}...)",
            )
        if not bracket_keys and ("[" in key or "]" in key):
            raise RequestValidationError("metadata", f"'metadata' keys may not contain brackets (key {key[:20]!r})")
        if not isinstance(value, str):
            raise RequestValidationError(f"metadata.{key}", f"'metadata.{key}' must be a string")
        if len(value) > MAX_METADATA_VALUE:
            raise RequestValidationError(
                f"metadata.{key}", f"'metadata.{key}' must be at most {MAX_METADATA_VALUE} characters"
            )


def _check_ranges(body: dict[str, Any]) -> None:
    for name, (low, high) in RANGES.items():
        value = body.get(name)
        if isinstance(value, (int, float)) and not ((low is None or value >= low) and (high is None or value <= high)):
            accepted = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise RequestValidationError(name, f"Invalid value for '{name}': must be {accepted} (got {value})")


def check_id_lengths(body: dict[str, Any], names: tuple[str, ...] = ("user", "session_id")) -> None:
    """The ids ``names`` (``user`` and ``session_id`` unless told) at most :data:`MAX_ID_LENGTH` characters
    (every endpoint that takes them)."""
    for name in names:
        value = body.get(name)
        if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
            raise RequestValidationError(
                name, f"'{name}' must be at most {MAX_ID_LENGTH} characters long (got {len(value)})"
            )


def _check_models_list(body: dict[str, Any]) -> None:
    models = body.get("models")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        raise RequestValidationError("models", "Invalid value for 'models': expected a list of model ids")


def _check_reasoning(body: dict[str, Any]) -> None:
    reasoning = body.get("reasoning") or {}
    max_tokens = reasoning.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0):
        raise RequestValidationError("reasoning.max_tokens", "'reasoning.max_tokens' must be a non-negative integer")
    for flag in ("exclude", "enabled"):
        if reasoning.get(flag) is not None and not isinstance(reasoning[flag], bool):
            raise RequestValidationError(f"reasoning.{flag}", f"'reasoning.{flag}' must be a boolean")
    if body.get("route") is not None and not isinstance(body["route"], str):
        raise RequestValidationError("route", "'route' must be a string")
    transforms = body.get("transforms")
    if transforms is not None and not (isinstance(transforms, list) and all(isinstance(t, str) for t in transforms)):
        raise RequestValidationError("transforms", "'transforms' must be a list of strings")


def _check_tools(body: dict[str, Any]) -> None:
    names: list[str] = []
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        function = tool.get("function")
        where = f"tools[{index}].function"
        if not isinstance(function, dict) or not _TOOL_NAME.match(str(function.get("name", ""))):
            raise RequestValidationError(
                f"{where}.name", f"'{where}.name' is required: letters, digits, '_' or '-', at most 64"
            )
        if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
            raise RequestValidationError(f"{where}.parameters", f"'{where}.parameters' must be a JSON schema object")
        names.append(function["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chosen = (choice.get("function") or {}).get("name")
        if chosen not in names:
            raise RequestValidationError(
                "tool_choice", f"'tool_choice' names function {chosen!r}, which is not one of 'tools'"
            )
