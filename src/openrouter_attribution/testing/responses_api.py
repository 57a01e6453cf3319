"""The fake server's Responses API (``POST /api/v1/responses``): validation, the same tiny model as chat,
and the answer as a ``response`` body or as typed SSE events. No socket I/O.

Requests are validated with the official OpenRouter SDK's ``openrouter.components.ResponsesRequest``
(strict JSON mode: ``store`` can only be ``false``), then with the documented limits the SDK model does
not enforce (https://openrouter.ai/docs/api-reference/responses/overview): ``previous_response_id`` is
refused (OpenRouter's Responses API is stateless), ``user``, ``safety_identifier`` and ``session_id`` at
most 256 characters, ``metadata`` at most 16 pairs with keys of at most 64 characters and without
brackets, string values of at most 512. The request is then read as the equivalent chat request
(:func:`to_chat_body`), so :func:`~openrouter_attribution.testing.content.plan_completion` answers it
exactly as it answers chat (tool calls included), and the answer is written in the Responses shapes of the
SDK's ``OpenResponsesResult`` and ``StreamEvents``, with ``usage`` and ``cost``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from openrouter_attribution.testing.content import Completion, reasoning_signature
from openrouter_attribution.testing.faults import Fault
from openrouter_attribution.testing.replies import JsonReply, RawReply, Reply, StreamReply
from openrouter_attribution.testing.responses import (
    SSE_COMMENT,
    Envelope,
    Usage,
    encode_json,
    split_text,
)
from openrouter_attribution.testing.validation import (
    RequestValidationError,
    check_id_lengths,
    check_metadata_limits,
    validate_with_model,
)

__all__ = ["responses_reply", "to_chat_body", "validate_responses_request"]

_GOOD_EVENTS_BEFORE_FAULT = 3


def validate_responses_request(body: Any) -> None:
    """Validate a parsed ``POST /responses`` body.

    Raises:
        RequestValidationError: The body is invalid; the message names the field.
    """
    from openrouter.components import ResponsesRequest

    validate_with_model(ResponsesRequest, body)
    if body.get("previous_response_id") is not None:
        raise RequestValidationError(
            "previous_response_id",
            "'previous_response_id' is not supported: the Responses API is stateless on OpenRouter; "
            "send the whole conversation in 'input'",
        )
    if not body.get("input"):
        raise RequestValidationError("input", "Invalid value for 'input': at least one input item is required")
    check_id_lengths(body, ("user", "safety_identifier", "session_id"))
    check_metadata_limits(body, bracket_keys=False)


# -- the request as the equivalent chat request -----------------------------------------------------------


def _parts_text(content: Any) -> Any:
    if isinstance(content, str):
        return content
    return [{"type": "text", "text": part.get("text", "")} for part in content or () if "text" in part]


def _chat_messages(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role"), "content": _parts_text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")}}  # fmt: skip
            last = messages[-1] if messages else {}
            if last.get("role") == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str) else _parts_text(output)})  # fmt: skip
    return messages


def to_chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat request a validated Responses request amounts to (what the fake model answers)."""
    chat: dict[str, Any] = {k: body[k] for k in ("model", "models", "user", "stream", "reasoning", "stop",
                                                   "parallel_tool_calls", "temperature") if k in body}  # fmt: skip
    messages = _chat_messages(body["input"])
    if body.get("instructions"):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    chat["messages"] = messages
    tools = [tool for tool in body.get("tools") or () if tool.get("type") == "function"]
    if tools:
        chat["tools"] = [
            {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}} for tool in tools
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("name"):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        chat["tool_choice"] = choice
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": text_format}
    elif text_format.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if isinstance(body.get("max_output_tokens"), int):
        chat["max_tokens"] = body["max_output_tokens"]
    return chat


# -- the answer ----------------------------------------------------------------------------------------------


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "cost": usage.cost,
        "is_byok": False,
        "cost_details": {
            "upstream_inference_cost": usage.cost,
            "upstream_inference_input_cost": usage.prompt_cost,
            "upstream_inference_output_cost": usage.completion_cost,
        },
    }


def _output_items(envelope: Envelope, request: dict[str, Any], completion: Completion) -> list[dict[str, Any]]:
    suffix = envelope.id.rsplit("-", 1)[-1]
    items: list[dict[str, Any]] = []
    if completion.reasoning and completion.reasoning_visible:
        item = {"type": "reasoning", "id": f"rs_{suffix}", "summary": [], "status": "completed",
                "content": [{"type": "reasoning_text", "text": completion.reasoning}]}  # fmt: skip
        if "reasoning.encrypted_content" in (request.get("include") or ()):  # only when asked for, as OpenAI's
            item["encrypted_content"] = reasoning_signature(completion.reasoning)
        items.append(item)
    if completion.content is not None:
        items.append({"type": "message", "id": f"msg_{suffix}", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": completion.content, "annotations": []}]})  # fmt: skip
    items += [{"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:24]}", "call_id": call.id, "name": call.name,
               "arguments": call.arguments, "status": "completed"} for call in completion.tool_calls]  # fmt: skip
    return items


def build_response_body(
    envelope: Envelope, request: dict[str, Any], completion: Completion | None, usage: Usage | None, *,
    status: str = "completed", error: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A ``response`` object in the shape of the SDK's ``OpenResponsesResult``."""
    incomplete = completion is not None and completion.finish_reason == "length"
    if status == "completed" and incomplete:
        status = "incomplete"
    output = _output_items(envelope, request, completion) if completion is not None and status != "in_progress" else []
    return {
        "id": envelope.id, "object": "response", "created_at": envelope.created, "model": envelope.model,
        "status": status,
        "completed_at": int(time.time()) if status in ("completed", "incomplete") else None,
        "output": output,
        "error": error, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "usage": _usage(usage) if usage is not None else None,
        "instructions": request.get("instructions"), "metadata": request.get("metadata") or {},
        "tools": request.get("tools") or [], "tool_choice": request.get("tool_choice", "auto"),
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "temperature": request.get("temperature"), "top_p": request.get("top_p"),
        "frequency_penalty": None, "presence_penalty": None, "store": False,
        "user": request.get("user"), "safety_identifier": request.get("safety_identifier"),
    }  # fmt: skip


def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The events that stream one output item: added, its deltas, done."""
    kind = item["type"]
    started = {**item, "status": "in_progress"}
    if kind == "message":
        started["content"] = []
    elif kind == "function_call":
        started["arguments"] = ""
    events: list[dict[str, Any]] = [{"type": "response.output_item.added", "output_index": index, "item": started}]
    where = {"item_id": item["id"], "output_index": index}
    if kind == "message":
        text = item["content"][0]["text"]
        events += [{"type": "response.output_text.delta", **where, "content_index": 0, "delta": piece, "logprobs": []}
                   for piece in (split_text(text) if text else [])]  # fmt: skip
        events.append({"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []})
    elif kind == "function_call":
        arguments = item["arguments"]
        third = max(1, -(-len(arguments) // 3))
        events += [{"type": "response.function_call_arguments.delta", **where, "delta": arguments[i : i + third]}
                   for i in range(0, len(arguments), third)]  # fmt: skip
        events.append(
            {"type": "response.function_call_arguments.done", **where, "name": item["name"], "arguments": arguments}
        )
    elif kind == "reasoning":
        text = item["content"][0]["text"]
        events += [{"type": "response.reasoning_text.delta", **where, "content_index": 0, "delta": piece}
                   for piece in split_text(text)]  # fmt: skip
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events


def build_events(
    envelope: Envelope, request: dict[str, Any], completion: Completion, usage: Usage
) -> list[dict[str, Any]]:
    """Every event of a successful stream, numbered: created, in_progress, the output items, completed."""
    final = build_response_body(envelope, request, completion, usage)
    opening = build_response_body(envelope, request, completion, None, status="in_progress")
    events = [{"type": "response.created", "response": opening}, {"type": "response.in_progress", "response": opening}]
    for index, item in enumerate(final["output"]):
        events += _item_events(index, item)
    events.append({"type": f"response.{final['status']}", "response": final})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + encode_json(event) + b"\n\n"


def _failure(fault: Fault, model: str) -> dict[str, Any]:
    """The Responses ``error`` of a mid-generation failure: ``server_error`` (a 502 in chat)."""
    error = fault.stream_error(model)
    return {"code": "server_error", "message": error["message"], "metadata": error.get("metadata")}


def responses_reply(
    envelope: Envelope, request: dict[str, Any], completion: Completion, usage: Usage, fault: Fault | None,
    headers: dict[str, str],
) -> Reply:  # fmt: skip
    """The reply to a Responses request, with the faults that act once generation started."""
    name = fault.name if fault is not None else None
    if not request.get("stream"):
        if name == "mid-stream-error" and fault is not None:
            failed = build_response_body(
                envelope, request, None, usage, status="failed", error=_failure(fault, envelope.model)
            )
            return JsonReply(200, failed, headers)
        body = build_response_body(envelope, request, completion, usage)
        if name == "malformed-chunk":
            return RawReply(200, encode_json(body)[:-7] + b"<<not json", "application/json", headers)
        if name == "truncated-stream":
            data = encode_json(body)
            return RawReply(200, data[: len(data) // 2], "application/json", headers)
        return JsonReply(200, body, headers)
    events = [_sse(event) for event in build_events(envelope, request, completion, usage)]
    good = events[:_GOOD_EVENTS_BEFORE_FAULT]
    if name == "mid-stream-error" and fault is not None:
        failed = build_response_body(
            envelope, request, None, usage, status="failed", error=_failure(fault, envelope.model)
        )
        last = {"type": "response.failed", "response": failed, "sequence_number": len(good)}
        return StreamReply([SSE_COMMENT, *good, _sse(last)], headers)
    if name == "malformed-chunk":
        return StreamReply([SSE_COMMENT, good[0], b'event: response.output_text.delta\ndata: {"type": \n\n'], headers)
    if name == "drop-connection":
        return StreamReply([SSE_COMMENT, *events], headers, drop_after=1 + _GOOD_EVENTS_BEFORE_FAULT)
    if name == "truncated-stream":
        return StreamReply([SSE_COMMENT, *good], headers)
    return StreamReply([SSE_COMMENT, *events], headers)
