"""Convert between LangChain messages and the neutral OpenAI chat format (glue only)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.client import StreamMeta
from openrouter_attribution.wire.response import Completion, Generation, Usage, sent_attribution

__all__ = [
    "from_completion",
    "from_delta",
    "last_chunk",
    "response_metadata",
    "to_openai_messages",
    "usage_metadata",
]

_ROLES = {SystemMessage: "system", HumanMessage: "user"}
_REASONING_KEYS = frozenset({"reasoning", "reasoning_details", "reasoning_items"})
_EXTRA_DELTA_KEYS = _REASONING_KEYS | {"tool_calls"}


def _tool_call_to_openai(call: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": json.dumps(call["args"], ensure_ascii=False)},
    }


def _ai_to_openai(message: AIMessage, reasoning_items: bool) -> dict[str, Any]:
    content = message.content
    out: dict[str, Any] = {"role": "assistant"}
    if isinstance(content, str):
        out["content"] = content
    else:
        text = "".join(
            part if isinstance(part, str) else part.get("text", "")
            for part in content
            if isinstance(part, str) or part.get("type") == "text"
        )
        out["content"] = text
    calls = [_tool_call_to_openai(call) for call in message.tool_calls]
    calls += [
        {"id": bad["id"], "type": "function", "function": {"name": bad["name"], "arguments": bad["args"]}}
        for bad in message.invalid_tool_calls
    ]
    if calls:
        out["tool_calls"] = calls
    extra = message.additional_kwargs
    # Reasoning must go back unchanged on the next turn for some models
    # (https://openrouter.ai/docs/use-cases/reasoning-tokens#preserving-reasoning-blocks).
    if extra.get("reasoning_details"):
        out["reasoning_details"] = extra["reasoning_details"]
    if extra.get("reasoning_content"):
        out["reasoning"] = extra["reasoning_content"]
    if reasoning_items:
        # Responses API reasoning items go back unchanged; ChatOpenAI keeps one under "reasoning".
        chat_openai = extra.get("reasoning")
        items = extra.get("reasoning_items") or ([chat_openai] if isinstance(chat_openai, dict) else [])
        if items:
            out["reasoning_items"] = list(items)
    return out


def _to_openai(message: BaseMessage, reasoning_items: bool = False) -> dict[str, Any]:
    role = _ROLES.get(type(message))
    if role is not None and isinstance(message.content, str):
        return {"role": role, "content": message.content}
    if isinstance(message, AIMessage):
        return _ai_to_openai(message, reasoning_items)
    if isinstance(message, ToolMessage) and isinstance(message.content, str):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if isinstance(message, ChatMessage) and isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    # Multimodal content blocks and the rarer message types: LangChain's own converter.
    return convert_to_openai_messages([message])[0]  # type: ignore[return-value]


def to_openai_messages(messages: Sequence[BaseMessage], *, reasoning_items: bool = False) -> list[dict[str, Any]]:
    """LangChain messages -> OpenAI chat messages (reasoning details included for assistant turns).

    Args:
        messages: The conversation.
        reasoning_items: Also carry the Responses API reasoning items of assistant turns
            (``reasoning_items``), for a model that sends ``POST /responses``.
    """
    return [_to_openai(message, reasoning_items) for message in messages]


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    """OpenRouter usage -> LangChain ``usage_metadata`` (cached and reasoning tokens included)."""
    if usage is None:
        return None
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    result: UsageMetadata = {  # type: ignore[typeddict-item]
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": usage.total_tokens if usage.total_tokens is not None else prompt + completion,
    }
    if usage.cached_tokens is not None or usage.cache_write_tokens is not None:
        details: dict[str, int] = {}
        if usage.cached_tokens is not None:
            details["cache_read"] = usage.cached_tokens
        if usage.cache_write_tokens is not None:
            details["cache_creation"] = usage.cache_write_tokens
        result["input_token_details"] = details  # type: ignore[typeddict-item]
    if usage.reasoning_tokens is not None:
        result["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return result


def response_metadata(generation: Generation, attribution: Attribution) -> dict[str, Any]:
    """The ``response_metadata`` of an answer: who served it, what it cost, and whom it was sent for."""
    usage = generation.usage
    return {
        "model_provider": "openrouter",
        "model_name": generation.model,
        "id": generation.id,
        "generation_id": generation.id,
        "provider": generation.provider,
        "finish_reason": generation.finish_reason,
        # JSON-friendly float here; the exact Decimal is in the usage ledger.
        "cost": float(usage.cost) if usage is not None and usage.cost is not None else None,
        "token_usage": usage.as_dict() if usage is not None else None,
        "attribution": sent_attribution(attribution.user, attribution.session_id),
    }


def _reasoning_kwargs(message: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    reasoning = message.get("reasoning")
    if reasoning:
        extra["reasoning_content"] = reasoning
    details = message.get("reasoning_details")
    if details:
        extra["reasoning_details"] = details
    items = message.get("reasoning_items")
    if items:
        extra["reasoning_items"] = items
    return extra


def from_completion(completion: Completion, attribution: Attribution) -> AIMessage:
    """A parsed completion -> ``AIMessage`` with tool calls, usage and response metadata."""
    message = completion.message
    tool_calls = []
    invalid_tool_calls = []
    for raw in message.get("tool_calls") or ():
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except Exception as err:  # the model produced arguments that are not JSON
            invalid_tool_calls.append(make_invalid_tool_call(raw, str(err)))
        else:
            if parsed is not None:
                tool_calls.append(parsed)
    return AIMessage(
        content=message.get("content") or "",
        additional_kwargs=_reasoning_kwargs(message),
        tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls,
        usage_metadata=usage_metadata(completion.usage),
        response_metadata=response_metadata(completion, attribution),
        id=completion.id,
    )


def from_delta(delta: Mapping[str, Any]) -> AIMessageChunk:
    """One stream delta -> ``AIMessageChunk`` (content, tool-call chunks, reasoning)."""
    if not _EXTRA_DELTA_KEYS.intersection(delta):
        return AIMessageChunk(content=delta.get("content") or "")  # most chunks: text only
    tool_chunks = [
        {
            "name": (call.get("function") or {}).get("name"),
            "args": (call.get("function") or {}).get("arguments"),
            "id": call.get("id"),
            "index": call.get("index"),
            "type": "tool_call_chunk",
        }
        for call in delta.get("tool_calls") or ()
    ]
    extra = _reasoning_kwargs(delta) if _REASONING_KEYS.intersection(delta) else {}
    return AIMessageChunk(
        content=delta.get("content") or "",
        additional_kwargs=extra,
        tool_call_chunks=tool_chunks,  # type: ignore[arg-type]
    )


def last_chunk(meta: StreamMeta, attribution: Attribution) -> AIMessageChunk:
    """The closing chunk of a stream: usage, response metadata, ``chunk_position="last"``."""
    return AIMessageChunk(
        content="",
        usage_metadata=usage_metadata(meta.usage),
        response_metadata=response_metadata(meta, attribution),
        chunk_position="last",
    )
