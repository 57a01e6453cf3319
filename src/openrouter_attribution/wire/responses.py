"""Shapes of OpenRouter's Responses API (``POST /responses``): the request body from neutral parts, the
response back to a neutral :class:`~openrouter_attribution.wire.response.Completion`.

The adapters hand over the same neutral messages (OpenAI chat format) as for chat completions; this module
turns them into Responses ``input`` items (https://openrouter.ai/docs/api-reference/responses/overview):
text messages, ``function_call`` items for an assistant's tool calls, ``function_call_output`` items for
tool results, and the ``reasoning`` items an earlier answer returned, sent back unchanged (an assistant
message's ``reasoning_items``). OpenRouter's Responses API is stateless: ``store`` is always ``false``
and ``previous_response_id`` is refused, so the whole history goes in ``input`` every turn. The end-user
goes out twice, as ``user`` and as ``safety_identifier`` (the field OpenRouter recommends there for
per-end-user abuse isolation), both the id as sent. Shapes only, no I/O; streams are read by
:mod:`openrouter_attribution.wire.responses_stream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openrouter_attribution.errors import AttributionError, ConfigurationError, InvalidInputError, InvalidResponseError
from openrouter_attribution.wire.errors import parse_error_object
from openrouter_attribution.wire.request import REQUEST_FIELDS, apply_overrides
from openrouter_attribution.wire.response import Completion, Usage, parse_usage

__all__ = [
    "RESPONSES_FIELDS",
    "build_responses_body",
    "build_responses_input",
    "check_responses_fields",
    "check_stateless",
    "parse_response",
    "parse_responses_error",
    "parse_responses_usage",
    "priced_view",
    "response_message",
]

# Body fields of OpenRouter's Responses API that a chat model can send (the `openrouter` SDK's
# `components.ResponsesRequest`); `max_tokens` / `max_completion_tokens` and `response_format` are
# accepted in their chat spelling and renamed.
RESPONSES_FIELDS = frozenset(
    {
        "model", "models", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning",
        "text", "stream", "store", "max_output_tokens", "max_tool_calls", "temperature", "top_p", "top_k",
        "top_logprobs", "frequency_penalty", "presence_penalty", "stop", "provider", "plugins", "user",
        "safety_identifier", "session_id", "metadata", "trace", "modalities", "truncation", "service_tier",
        "prompt_cache_key", "include", "debug", "image_config",
        "max_tokens", "max_completion_tokens", "response_format",
    }
)  # fmt: skip
_RENAMED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
_STATELESS = (
    "OpenRouter's Responses API is stateless: {what}. Send the whole conversation as messages on every "
    "call (the model does), and use session_id=... to group the turns of a conversation."
)
_ERROR_STATUS = {"server_error": 502, "rate_limit_exceeded": 429, "vector_store_timeout": 408, "permission_denied": 403}
"""HTTP status whose error class a Responses error ``code`` maps to (``invalid_*`` / ``image_*`` codes are 400,
``*_policy*`` codes are 403); an unknown code stays a plain ``APIError``."""


def check_stateless(params: Mapping[str, Any], *, where: str) -> None:
    """Refuse the stateful Responses options OpenRouter rejects (before any I/O).

    Raises:
        ConfigurationError: ``previous_response_id`` is set (or ``ChatOpenAI``'s ``use_previous_response_id``),
            or ``store`` is not ``False``.
    """
    for name in ("previous_response_id", "use_previous_response_id"):
        if params.get(name) not in (None, False):
            raise ConfigurationError(_STATELESS.format(what=f"{name} ({where}) is refused with a 400; remove it"))
    if "store" in params and params["store"] is not False:
        raise ConfigurationError(_STATELESS.format(what=f"store must be false ({where}); remove it"))


def check_responses_fields(params: Mapping[str, Any], *, where: str) -> None:
    """Raise :class:`ConfigurationError` for a parameter the Responses API does not take.

    Args:
        params: Parameter names (and values) to check.
        where: Where they came from, for the message (e.g. ``"invoke() keyword"``).
    """
    check_stateless(params, where=where)
    chat_only = sorted(name for name in params if name not in RESPONSES_FIELDS and name in REQUEST_FIELDS)
    if chat_only:
        raise ConfigurationError(
            f"{', '.join(chat_only)} ({where}) is a chat-completions parameter that OpenRouter's Responses API "
            "does not take; remove it, or set use_responses_api=False."
        )
    unknown = sorted(name for name in params if name not in RESPONSES_FIELDS)
    if unknown:
        raise ConfigurationError(
            f"Unknown OpenRouter Responses parameter(s) {', '.join(unknown)} ({where}). Check the spelling, or "
            "pass fields OpenRouter accepts but this library does not know yet through extra_body={...}."
        )


# -- request -------------------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return "".join(part.get("text", "") for part in content if isinstance(part, Mapping) and part.get("type") == "text")


def _input_part(part: Any, position: int) -> dict[str, Any]:
    """One chat content part -> a Responses ``input_*`` part."""
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        out = {"type": "input_image", "image_url": url, "detail": "auto"}
        if isinstance(image, Mapping) and image.get("detail"):
            out["detail"] = image["detail"]
        return out
    if kind == "file":
        file = part.get("file") or {}
        return {"type": "input_file", **{k: v for k, v in file.items() if k in ("file_data", "file_id", "filename")}}
    if kind in ("input_text", "input_image", "input_file"):
        return dict(part)
    raise InvalidInputError(
        f"Content part {position} is of type {kind!r}, which this library cannot send to the Responses API "
        "(text, image_url and file parts can be sent); remove it, or set use_responses_api=False."
    )


def _content(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    return [_input_part(part, position) for position, part in enumerate(content)]


def _assistant_items(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [dict(item) for item in message.get("reasoning_items") or ()]
    text = _text(message.get("content"))
    if text:
        items.append({"type": "message", "role": "assistant", "content": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append({"type": "function_call", "call_id": call.get("id"), "name": function.get("name"),
                      "arguments": function.get("arguments") or ""})  # fmt: skip
    return items


def build_responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral chat messages -> Responses ``input`` items.

    Raises:
        InvalidInputError: a message role or content part the Responses API cannot take (before any I/O).
    """
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            items += _assistant_items(message)
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": _content(message.get("content"))})  # fmt: skip
        elif role in ("system", "developer", "user"):
            items.append({"type": "message", "role": role, "content": _content(message.get("content"))})
        else:
            raise InvalidInputError(
                f"A {role!r} message cannot be sent to the Responses API (system, developer, user, assistant "
                "and tool messages can); convert it, or set use_responses_api=False."
            )
    return items


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, Mapping):
        return dict(tool)  # already in Responses shape, or a server tool
    out = {"type": "function", **function}
    out.setdefault("parameters", {"type": "object", "properties": {}})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def _text_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    if response_format.get("type") == "json_schema":
        return {"format": {"type": "json_schema", **(response_format.get("json_schema") or {})}}
    return {"format": dict(response_format)}


def _check_metadata_keys(metadata: Mapping[str, Any]) -> None:
    for key in metadata:
        if "[" in key or "]" in key:
            raise AttributionError(
                "metadata keys sent to the Responses API may not contain '[' or ']' (OpenRouter refuses them); "
                "rename the key."
            )


def build_responses_body(
    *,
    messages: list[dict[str, Any]],
    params: Mapping[str, Any],
    overrides: Mapping[str, Any] | None,
    attribution_fields: Mapping[str, Any],
    stream: bool,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the ``POST /responses`` body (the arguments of :func:`~.request.build_body`).

    Chat spellings are translated: ``max_tokens`` -> ``max_output_tokens``, chat ``tools`` and
    ``tool_choice`` -> their flat Responses form, ``response_format`` -> ``text.format``. ``store`` is
    always ``false``; ``user`` also goes out as ``safety_identifier``.

    Raises:
        ConfigurationError: a stateful option (``previous_response_id``, ``store``) is set.
        InvalidInputError: a message the Responses API cannot take.
        AttributionError: a ``metadata`` key with brackets.
    """
    body = apply_overrides(params, overrides)
    for chat_name, name in _RENAMED.items():
        if chat_name in body:
            body.setdefault(name, body.pop(chat_name))
    if body.get("tools"):
        body["tools"] = [_tool(tool) for tool in body["tools"]]
    if "tool_choice" in body:
        body["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = body.pop("response_format", None)
    if isinstance(response_format, Mapping):
        body["text"] = _text_format(response_format)
    body["input"] = build_responses_input(messages)
    body["store"] = False
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    body.update(attribution_fields)
    if "user" in attribution_fields:
        body["safety_identifier"] = attribution_fields["user"]
    if "metadata" in attribution_fields:
        _check_metadata_keys(attribution_fields["metadata"])
    if extra_body:
        check_stateless(extra_body, where="extra_body")
        body.update(extra_body)
    return body


def priced_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A chat-shaped view of a Responses body, for the budget's cost ceiling (``pricing.ceiling``)."""
    view: dict[str, Any] = {"model": body.get("model"), "messages": [
        {"content": item.get("content") if item.get("type") == "message" else item} for item in body["input"]
    ]}  # fmt: skip
    for name, chat_name in (("models", "models"), ("tools", "tools"), ("max_output_tokens", "max_tokens")):
        if body.get(name) is not None:
            view[chat_name] = body[name]
    return view


# -- response ------------------------------------------------------------------------------------------


def parse_responses_usage(raw: Any) -> Usage | None:
    """Parse the Responses API's ``usage`` object (``input_tokens``, ``output_tokens``, ``cost`` ...)."""
    return parse_usage(raw, prompt="input_tokens", completion="output_tokens")


def parse_responses_error(error: Any, *, generation_id: str | None, in_stream: bool) -> Exception:
    """The typed error for a Responses ``error`` object, classified by its ``code``."""
    code = error.get("code") if isinstance(error, Mapping) else None
    status = None
    if isinstance(code, str):
        status = _ERROR_STATUS.get(code)
        if status is None and (code.startswith(("invalid_", "image_")) or "image" in code):
            status = 400
        elif status is None and "policy" in code:
            status = 403
    return parse_error_object(error, generation_id=generation_id, in_stream=in_stream, class_status=status)


def _reasoning_text(item: Mapping[str, Any]) -> str:
    parts = [*(item.get("content") or ()), *(item.get("summary") or ())]
    return "".join(part.get("text", "") for part in parts if isinstance(part, Mapping))


def response_message(output: list[Any]) -> dict[str, Any]:
    """The ``output`` items of a response -> an assistant message in neutral (OpenAI chat) form.

    Text goes to ``content``, ``function_call`` items to ``tool_calls`` (``id`` is the item's ``call_id``),
    ``reasoning`` items are kept whole in ``reasoning_items`` (to be sent back unchanged), their text in
    ``reasoning``.
    """
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[dict[str, Any]] = []
    for item in output:
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "message":
            texts += [p.get("text", "") for p in item.get("content") or () if p.get("type") == "output_text"]
        elif kind == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments") or ""}
            calls.append({"id": item.get("call_id"), "type": "function", "function": function})
        elif kind == "reasoning":
            reasoning.append(item)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_items"] = reasoning
        message["reasoning"] = "".join(_reasoning_text(item) for item in reasoning) or None
    return message


def finish_reason(body: Mapping[str, Any], message: Mapping[str, Any]) -> str | None:
    """The chat-style finish reason of a response: ``stop``, ``tool_calls``, ``length`` or ``content_filter``."""
    status = body.get("status")
    if status == "completed":
        return "tool_calls" if message.get("tool_calls") else "stop"
    if status == "incomplete":
        reason = (body.get("incomplete_details") or {}).get("reason")
        return "length" if reason == "max_output_tokens" else reason or "length"
    return status if isinstance(status, str) else None


def parse_response(body: Any) -> Completion:
    """Parse a non-streamed Responses API body (``object: "response"``).

    Raises:
        APIError: the body carries an ``error`` (a failure after generation started, sent with HTTP 200).
        InvalidResponseError: the body is empty or does not have the shape of a response.
    """
    if body is None or (isinstance(body, (str, bytes)) and not body.strip()):
        raise InvalidResponseError("OpenRouter answered with HTTP 200 and an empty body.")
    if not isinstance(body, dict):
        raise InvalidResponseError(f"OpenRouter sent a {type(body).__name__} where a JSON object was expected.")
    if body.get("error"):
        raise parse_responses_error(body["error"], generation_id=body.get("id"), in_stream=False)
    output = body.get("output")
    if not isinstance(output, list):
        raise InvalidResponseError("OpenRouter sent a Responses answer without an output list.")
    message = response_message(output)
    return Completion(
        id=body.get("id"),
        model=body.get("model"),
        provider=body.get("provider"),
        message=message,
        finish_reason=finish_reason(body, message),
        usage=parse_responses_usage(body.get("usage")),
        raw=body,
    )
