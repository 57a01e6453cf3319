"""Convert between LlamaIndex chat types and the neutral OpenAI chat format (glue only, no I/O).

Assistant turns keep what the next turn needs: tool calls as
:class:`~llama_index.core.base.llms.types.ToolCallBlock` blocks, and OpenRouter's
``reasoning`` / ``reasoning_details`` in ``additional_kwargs``, sent back unchanged
(https://openrouter.ai/docs/use-cases/reasoning-tokens#preserving-reasoning-blocks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.client import StreamMeta
from openrouter_attribution.wire.response import Completion, Generation, sent_attribution
from openrouter_attribution.wire.tools import merge_tool_call_deltas, parse_tool_arguments

__all__ = [
    "StreamAccumulator",
    "from_completion",
    "response_kwargs",
    "to_openai_messages",
    "tool_selections",
]

_ROLES = {MessageRole.CHATBOT: "assistant", MessageRole.MODEL: "assistant"}
_REASONING_KEYS = ("reasoning", "reasoning_details")


def _content_parts(message: ChatMessage) -> str | list[dict[str, Any]]:
    """Text and images of a message: a plain string when it holds text only."""
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            url = str(block.url) if block.url is not None and block.image is None else block.inline_url()
            image: dict[str, Any] = {"url": url}
            if block.detail:
                image["detail"] = block.detail
            parts.append({"type": "image_url", "image_url": image})
        elif isinstance(block, CachePoint):
            # OpenRouter prompt caching: `cache_control` on the last text part before the point
            # (https://openrouter.ai/docs/features/prompt-caching).
            texts = [part for part in parts if part["type"] == "text"]
            if texts:
                texts[-1]["cache_control"] = {"type": block.cache_control.type}
        elif isinstance(block, (ToolCallBlock, ThinkingBlock)):
            continue  # sent as `tool_calls` / `reasoning`, not as content
        else:
            raise ValueError(
                f"{type(block).__name__} content is not supported by openrouter_attribution's OpenRouter LLM yet; "
                "send text and images, or describe the content in text."
            )
    if all(part["type"] == "text" and len(part) == 2 for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _tool_call_to_openai(call: Any) -> dict[str, Any]:
    """A ToolCallBlock, an OpenAI tool-call dict or SDK object -> OpenAI tool-call dict."""
    if isinstance(call, ToolCallBlock):
        arguments = call.tool_kwargs
        return {
            "id": call.tool_call_id,
            "type": "function",
            "function": {
                "name": call.tool_name,
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False),
            },
        }
    if hasattr(call, "model_dump"):
        call = call.model_dump(exclude_none=True)
    return dict(call)


def _assistant_to_openai(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    calls = [_tool_call_to_openai(block) for block in message.blocks if isinstance(block, ToolCallBlock)]
    if not calls:  # older integrations and hand-built histories keep OpenAI dicts here
        calls = [_tool_call_to_openai(call) for call in message.additional_kwargs.get("tool_calls") or ()]
    content = _content_parts(message)
    out["content"] = content if content or not calls else None
    if calls:
        out["tool_calls"] = calls
    extra = message.additional_kwargs
    reasoning = extra.get("reasoning") or "".join(
        block.content or "" for block in message.blocks if isinstance(block, ThinkingBlock)
    )
    if reasoning:
        out["reasoning"] = reasoning
    if extra.get("reasoning_details"):
        out["reasoning_details"] = extra["reasoning_details"]
    return out


def _to_openai(message: ChatMessage) -> dict[str, Any]:
    role = _ROLES.get(message.role, message.role.value)
    if role == "assistant":
        return _assistant_to_openai(message)
    if role == "tool":
        call_id = message.additional_kwargs.get("tool_call_id")
        if not call_id:
            raise ValueError("A tool message needs additional_kwargs['tool_call_id'] (the id of the call it answers).")
        return {"role": "tool", "tool_call_id": call_id, "content": _content_parts(message)}
    return {"role": role, "content": _content_parts(message)}


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex chat messages -> OpenAI chat messages (tool calls and reasoning included).

    Raises:
        ValueError: a message holds a content block OpenRouter cannot take (audio, video,
            documents), or a tool message does not say which call it answers.
    """
    return [_to_openai(message) for message in messages]


def response_kwargs(generation: Generation, attribution: Attribution) -> dict[str, Any]:
    """The ``additional_kwargs`` of a response: tokens, cost, who served it and whom it was sent for.

    Values OpenRouter did not report are left out (an unknown cost is absent, never 0).
    """
    out: dict[str, Any] = {}
    usage = generation.usage
    if usage is not None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"):
            value = getattr(usage, name)
            if value is not None:
                out[name] = value
        if usage.cost is not None:
            out["cost"] = float(usage.cost)  # JSON-friendly; the exact Decimal is in the usage ledger
    for name, value in (("provider", generation.provider), ("model", generation.model),
                        ("generation_id", generation.id), ("finish_reason", generation.finish_reason)):  # fmt: skip
        if value is not None:
            out[name] = value
    out["attribution"] = sent_attribution(attribution.user, attribution.session_id)
    return out


def _assistant_message(content: str | None, calls: Sequence[Mapping[str, Any]], extra: dict[str, Any]) -> ChatMessage:
    blocks: list[Any] = []
    if content or not calls:
        blocks.append(TextBlock(text=content or ""))
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        parsed = parse_tool_arguments(arguments)
        blocks.append(
            ToolCallBlock(
                tool_call_id=call.get("id"),
                tool_name=function.get("name") or "",
                # Arguments that are not a JSON object stay a string, so they go back unchanged.
                tool_kwargs=parsed if parsed is not None else (arguments or ""),
            )
        )
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def _reasoning_extra(message: Mapping[str, Any]) -> dict[str, Any]:
    return {key: message[key] for key in _REASONING_KEYS if message.get(key)}


def from_completion(completion: Completion, attribution: Attribution) -> ChatResponse:
    """A parsed completion -> ``ChatResponse`` (``raw`` is the response body)."""
    message = completion.message
    return ChatResponse(
        message=_assistant_message(message.get("content"), message.get("tool_calls") or (), _reasoning_extra(message)),
        raw=completion.raw,
        additional_kwargs=response_kwargs(completion, attribution),
    )


_DETAIL_TEXT_KEYS = ("text", "summary", "data")


def _merge_reasoning_details(details: list[dict[str, Any]], pieces: Sequence[Mapping[str, Any]]) -> None:
    """Fold streamed ``reasoning_details`` pieces into whole entries (same ``index`` and ``type``).

    Streams split one entry over many chunks; the next turn must send it back whole, as a
    non-streamed answer would have returned it (text concatenated, ``signature`` kept).
    """
    for piece in pieces:
        last = details[-1] if details else None
        same = (
            last is not None
            and piece.get("index") is not None
            and ((last.get("index"), last.get("type")) == (piece.get("index"), piece.get("type")))
        )
        if not same or last is None:
            details.append(dict(piece))
            continue
        for key, value in piece.items():
            if key in _DETAIL_TEXT_KEYS and isinstance(value, str) and isinstance(last.get(key), str):
                last[key] += value
            elif last.get(key) is None:
                last[key] = value


class StreamAccumulator:
    """Builds the cumulative ``ChatResponse`` objects of a stream, LlamaIndex style.

    Each response holds the whole message so far and the new text in ``delta``; the
    closing one (from :meth:`final`) carries usage and metadata.
    """

    __slots__ = ("calls", "content", "details", "reasoning")

    def __init__(self) -> None:
        self.content = ""
        self.reasoning = ""
        self.details: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []

    def _message(self) -> ChatMessage:
        extra: dict[str, Any] = {}
        if self.reasoning:
            extra["reasoning"] = self.reasoning
        if self.details:
            extra["reasoning_details"] = [dict(detail) for detail in self.details]
        return _assistant_message(self.content, self.calls, extra)

    def update(self, delta: Mapping[str, Any]) -> ChatResponse | None:
        """Fold one delta in; ``None`` when it carries nothing new (role-only or usage chunks).

        The response's ``raw`` is the delta itself.
        """
        text = delta.get("content") or ""
        thinking = delta.get("reasoning") or ""
        details = delta.get("reasoning_details") or ()
        tool_calls = delta.get("tool_calls") or ()
        if not (text or thinking or details or tool_calls):
            return None
        self.content += text
        self.reasoning += thinking
        _merge_reasoning_details(self.details, details)
        merge_tool_call_deltas(self.calls, tool_calls)
        extra = {"thinking_delta": thinking} if thinking else {}
        return ChatResponse(message=self._message(), delta=text, raw=dict(delta), additional_kwargs=extra)

    def final(self, meta: StreamMeta, attribution: Attribution) -> ChatResponse:
        """The closing response: the whole message, an empty delta, usage and metadata."""
        kwargs = response_kwargs(meta, attribution)
        raw = {**kwargs, "usage": meta.usage.as_dict() if meta.usage is not None else None}
        return ChatResponse(message=self._message(), delta="", raw=raw, additional_kwargs=kwargs)


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """The tool calls of an assistant message as LlamaIndex ``ToolSelection`` objects.

    Arguments that are not a JSON object (a truncated stream, a model mistake) become ``{}``, as in
    LlamaIndex's own integrations; the tool then reports the missing arguments to the model.
    """
    selections = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            kwargs = block.tool_kwargs if isinstance(block.tool_kwargs, dict) else {}
            selections.append(
                ToolSelection(tool_id=block.tool_call_id or "", tool_name=block.tool_name, tool_kwargs=kwargs)
            )
    return selections
