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
2. **What this module adds** (always, SDK or not): ``user`` and ``session_id`` at
   most 256 characters; ``metadata`` at most 16 pairs, keys at most 64
   characters, string values at most 512 characters; ``messages`` not empty;
   every model id of the form ``vendor/name`` (else ``"<id> is not a valid model
   ID"``); ``reasoning.max_tokens`` a non-negative integer, ``reasoning.exclude``
   and ``reasoning.enabled`` booleans; ``route`` a string and ``transforms`` a
   list of strings; every ``function`` tool has a ``name`` (letters, digits,
   ``_``, ``-``, at most 64) and object ``parameters``; a named ``tool_choice``
   names one of the ``tools``.
3. **Without the SDK** (``openrouter`` not installed), step 1 is replaced by
   explicit type checks of the fields above and of each message's ``role``,
   ``content`` and ``tool_call_id``; nested shapes (content parts, provider
   preferences, plugins) are then not checked.

Every failure raises :class:`RequestValidationError`, whose message names the
offending field; the server turns it into OpenRouter's 400 error body.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["RequestValidationError", "validate_chat_request"]

MAX_ID_LENGTH = 256
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
_MODEL_ID = re.compile(r"^[^/\s]+/\S+$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant", "tool"}


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
    if not _validate_with_sdk(body):
        _validate_basic_types(body)
    _check_limits(body)
    _check_model_ids(body)
    _check_reasoning(body)
    _check_tools(body)


def _validate_with_sdk(body: dict[str, Any]) -> bool:
    """Validate with the SDK's ``ChatRequest``; return ``False`` when the SDK is not installed."""
    try:
        from openrouter.components import ChatRequest
        from pydantic import ValidationError
    except ImportError:
        return False
    try:
        ChatRequest.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as err:
        raise _from_pydantic(body, err.errors()) from err
    return True


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


_TYPE_CHECKS: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a string"),
    "models": ((list,), "a list of model ids"),
    "user": ((str,), "a string"),
    "session_id": ((str,), "a string"),
    "trace": ((dict,), "an object"),
    "metadata": ((dict,), "an object"),
    "provider": ((dict,), "an object"),
    "reasoning": ((dict,), "an object"),
    "response_format": ((dict,), "an object"),
    "stream_options": ((dict,), "an object"),
    "tools": ((list,), "a list"),
    "plugins": ((list,), "a list"),
    "tool_choice": ((str, dict), "a string or an object"),
    "stop": ((str, list), "a string or a list of strings"),
    "stream": ((bool,), "a boolean"),
    "logprobs": ((bool,), "a boolean"),
    "parallel_tool_calls": ((bool,), "a boolean"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "seed": ((int,), "an integer"),
    "top_k": ((int,), "an integer"),
    "top_logprobs": ((int,), "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "min_p": ((int, float), "a number"),
    "top_a": ((int, float), "a number"),
    "repetition_penalty": ((int, float), "a number"),
    "frequency_penalty": ((int, float), "a number"),
    "presence_penalty": ((int, float), "a number"),
}


def _validate_basic_types(body: dict[str, Any]) -> None:
    """Fallback when the SDK is missing: top-level types and message essentials."""
    for name, (types, expected) in _TYPE_CHECKS.items():
        value = body.get(name)
        if value is None:
            continue
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            raise RequestValidationError(name, f"Invalid value for '{name}': expected {expected}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise RequestValidationError("messages", "Invalid value for 'messages': expected a list of messages")
    for index, message in enumerate(messages):
        _check_basic_message(index, message)


def _check_basic_message(index: int, message: Any) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        raise RequestValidationError(
            where, f"Invalid value for '{where}': expected a message with a valid role"
        )
    content = message.get("content")
    if not (isinstance(content, (str, list)) or (content is None and message["role"] == "assistant")):
        raise RequestValidationError(f"{where}.content", f"Invalid value for '{where}.content'")
    if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise RequestValidationError(f"{where}.tool_call_id", f"Missing '{where}.tool_call_id'")


def _check_limits(body: dict[str, Any]) -> None:
    if not body.get("messages"):
        raise RequestValidationError(
            "messages", "Invalid value for 'messages': at least one message is required"
        )
    for name in ("user", "session_id"):
        value = body.get(name)
        if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
            raise RequestValidationError(
                name, f"'{name}' must be at most {MAX_ID_LENGTH} characters long (got {len(value)})"
            )
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
        if not isinstance(value, str):
            raise RequestValidationError(f"metadata.{key}", f"'metadata.{key}' must be a string")
        if len(value) > MAX_METADATA_VALUE:
            raise RequestValidationError(
                f"metadata.{key}", f"'metadata.{key}' must be at most {MAX_METADATA_VALUE} characters"
            )


def _check_model_ids(body: dict[str, Any]) -> None:
    models = body.get("models")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        raise RequestValidationError("models", "Invalid value for 'models': expected a list of model ids")
    for model_id in [body.get("model"), *(models or [])]:
        if model_id is not None and not _MODEL_ID.match(model_id):
            raise RequestValidationError("model", f"{model_id} is not a valid model ID")


def _check_reasoning(body: dict[str, Any]) -> None:
    reasoning = body.get("reasoning") or {}
    max_tokens = reasoning.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
    ):
        raise RequestValidationError(
            "reasoning.max_tokens", "'reasoning.max_tokens' must be a non-negative integer"
        )
    for flag in ("exclude", "enabled"):
        if reasoning.get(flag) is not None and not isinstance(reasoning[flag], bool):
            raise RequestValidationError(f"reasoning.{flag}", f"'reasoning.{flag}' must be a boolean")
    if body.get("route") is not None and not isinstance(body["route"], str):
        raise RequestValidationError("route", "'route' must be a string")
    transforms = body.get("transforms")
    if transforms is not None and not (
        isinstance(transforms, list) and all(isinstance(t, str) for t in transforms)
    ):
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
            raise RequestValidationError(
                f"{where}.parameters", f"'{where}.parameters' must be a JSON schema object"
            )
        names.append(function["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chosen = (choice.get("function") or {}).get("name")
        if chosen not in names:
            raise RequestValidationError(
                "tool_choice", f"'tool_choice' names function {chosen!r}, which is not one of 'tools'"
            )
