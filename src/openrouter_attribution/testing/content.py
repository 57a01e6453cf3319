"""The fake model: deterministic, honest answers derived from the conversation.

Rules, in order (see :func:`plan_completion`):

* **Tool calls** when ``tools`` holds functions, ``tool_choice`` is not
  ``"none"``, and either ``tool_choice`` forces a call (``"required"`` or a named
  function) or the latest assistant tool calls after the last user message are
  not all answered by ``tool`` messages yet. The tool: the named one; else every
  tool whose name appears as a word in the last user message, in order of
  appearance (only the first when ``parallel_tool_calls`` is ``false``); else
  the first tool. Arguments come from the tool's JSON schema, filled with the
  numbers and quoted strings of the last user message
  (:mod:`~openrouter_attribution.testing.schema_values`).
* **Structured output**: ``response_format`` ``json_schema`` gives a JSON document
  valid against the schema; ``json_object`` gives an object whose keys are the
  quoted words of the last user message (``{"answer": ...}`` when there are none).
* **After tool results**: ``"The tool returned: <result>"`` (results joined with ``"; "``).
* **Otherwise**: ``"[<model>] Reply to: <last user text, truncated to 80 chars>"``.

Then ``stop`` cuts the content at the first stop string, and ``max_tokens`` /
``max_completion_tokens`` truncate it (``finish_reason: "length"``).
Tokens are estimated as one per four characters, at least one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

from openrouter_attribution.testing.catalog import ModelInfo
from openrouter_attribution.testing.schema_values import Hints, generate_value

__all__ = [
    "Completion",
    "ToolCall",
    "estimate_tokens",
    "last_user_text",
    "message_text",
    "message_tokens",
    "plan_completion",
    "reasoning_signature",
]

_SNIPPET = 80
_NATIVE_FINISH = {
    "anthropic": {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"},
    "google": {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"},
}


@dataclass(frozen=True)
class ToolCall:
    """One tool call of the assistant message."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    """What the fake model answers, before it is put on the wire.

    Attributes:
        content: Assistant text; ``None`` when the answer is only tool calls.
        tool_calls: Tool calls, possibly several (parallel calls).
        reasoning: Reasoning text when reasoning is on (also when excluded from the response).
        reasoning_visible: Whether ``reasoning`` is returned (``False`` with ``reasoning.exclude``).
        finish_reason: ``"stop"``, ``"tool_calls"`` or ``"length"``.
        native_finish_reason: The upstream's own spelling of ``finish_reason``.
    """

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    reasoning: str | None
    reasoning_visible: bool
    finish_reason: str
    native_finish_reason: str

    @property
    def reasoning_tokens(self) -> int:
        """Reasoning tokens spent (counted even when the text is excluded)."""
        return estimate_tokens(self.reasoning) if self.reasoning else 0

    @property
    def completion_tokens(self) -> int:
        """Completion tokens: content, tool calls and reasoning."""
        tool_text = "".join(call.name + call.arguments for call in self.tool_calls)
        visible = (self.content or "") + tool_text
        return ((estimate_tokens(visible) if visible else 0) + self.reasoning_tokens) or 1


def estimate_tokens(text: str) -> int:
    """Return the deterministic token estimate of ``text``: one per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


def message_tokens(message: Any) -> int:
    """Return the prompt tokens of one message: its text plus its tool calls."""
    text = message_text(message)
    if isinstance(message, dict) and message.get("tool_calls"):
        text += json.dumps(message["tool_calls"], ensure_ascii=False)
    return estimate_tokens(text)


def message_text(message: Any) -> str:
    """Return the text of a message: its string content or the text of its content parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


def last_user_text(messages: list[Any]) -> str:
    """Return the text of the last ``user`` message (``""`` when there is none)."""
    index = _last_user_index(messages)
    return message_text(messages[index]) if index >= 0 else ""


def plan_completion(body: dict[str, Any], model: ModelInfo) -> Completion:
    """Decide the fake model's answer to a validated chat request body.

    Args:
        body: The request body (already validated).
        model: The model that serves the request.

    Returns:
        The completion, with ``stop`` and token limits applied.
    """
    messages: list[Any] = body.get("messages") or []
    user_text = last_user_text(messages)
    reasoning, visible = _reasoning(body, model, user_text)
    tools = _function_tools(body)
    if tools and _should_call_tools(body, messages):
        calls = _tool_calls(body, tools, user_text)
        return Completion(None, calls, reasoning, visible, "tool_calls", _native(model, "tool_calls"))
    content = _text_answer(body, model, messages, user_text)
    content, finish = _apply_limits(body, content)
    return Completion(content, (), reasoning, visible, finish, _native(model, finish))


def _native(model: ModelInfo, finish_reason: str) -> str:
    vendor = model.id.split("/", 1)[0]
    return _NATIVE_FINISH.get(vendor, {}).get(finish_reason, finish_reason)


def _last_user_index(messages: list[Any]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], dict) and messages[index].get("role") == "user":
            return index
    return -1


def _truncate(text: str, limit: int = _SNIPPET) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reasoning(body: dict[str, Any], model: ModelInfo, user_text: str) -> tuple[str | None, bool]:
    """Return ``(reasoning text or None, visible)``."""
    config = body.get("reasoning") or {}
    effort = config.get("effort") or body.get("reasoning_effort")
    requested = (bool(config) and config.get("enabled") is not False and effort != "none") or (
        effort not in (None, "none")
    )
    if not (requested or model.reasoning):
        return None, False
    text = f'The user wrote "{_truncate(user_text, 60)}". I will answer it directly, step by step.'
    budget = config.get("max_tokens")
    if isinstance(budget, int) and budget > 0:
        text = text[: budget * 4]
    return text, not config.get("exclude", False)


def _function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools") or []
    return [t["function"] for t in tools if isinstance(t, dict) and t.get("type") == "function" and "function" in t]


def _should_call_tools(body: dict[str, Any], messages: list[Any]) -> bool:
    choice = body.get("tool_choice")
    if choice == "none":
        return False
    if choice == "required" or isinstance(choice, dict):
        return True
    return not _tool_results_after_last_user(messages)


def _tool_results_after_last_user(messages: list[Any]) -> list[str]:
    """Return the results answering the latest tool calls after the last user message, if all are answered."""
    start = _last_user_index(messages) + 1
    for index in range(len(messages) - 1, start - 1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls"):
            wanted = {call.get("id") for call in message["tool_calls"] if isinstance(call, dict)}
            answers = [m for m in messages[index + 1 :] if isinstance(m, dict) and m.get("role") == "tool"]
            answered = {m.get("tool_call_id") for m in answers}
            return [message_text(m) for m in answers] if wanted <= answered else []
    trailing: list[str] = []
    for message in reversed(messages[start:]):
        if not (isinstance(message, dict) and message.get("role") == "tool"):
            break
        trailing.insert(0, message_text(message))
    return trailing


def _tool_calls(body: dict[str, Any], tools: list[dict[str, Any]], user_text: str) -> tuple[ToolCall, ...]:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        chosen = [t for t in tools if t.get("name") == choice["function"].get("name")][:1]
    else:
        positions = []
        for tool in tools:
            match = re.search(rf"(?<![\w]){re.escape(tool['name'])}(?![\w])", user_text)
            if match:
                positions.append((match.start(), tool))
        chosen = [tool for _, tool in sorted(positions, key=lambda item: item[0])] or tools[:1]
        if body.get("parallel_tool_calls") is False:
            chosen = chosen[:1]
    hints = Hints.from_text(user_text)
    calls = []
    for tool in chosen:
        arguments = generate_value(tool.get("parameters") or {"type": "object"}, hints, name=tool["name"])
        if not isinstance(arguments, dict):
            arguments = {}
        calls.append(ToolCall(f"call_{uuid.uuid4().hex[:24]}", tool["name"], json.dumps(arguments, ensure_ascii=False)))
    return tuple(calls)


def _text_answer(body: dict[str, Any], model: ModelInfo, messages: list[Any], user_text: str) -> str:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        return json.dumps(generate_value(schema, Hints.from_text(user_text)), ensure_ascii=False)
    if response_format.get("type") == "json_object":
        keys = list(dict.fromkeys(Hints.from_text(user_text).strings))
        document = {key: f"example {key}" for key in keys} or {"answer": _reply(model, user_text)}
        return json.dumps(document, ensure_ascii=False)
    results = _tool_results_after_last_user(messages)
    if results:
        return "The tool returned: " + "; ".join(results)
    return _reply(model, user_text)


def _reply(model: ModelInfo, user_text: str) -> str:
    return f"[{model.id}] Reply to: {_truncate(user_text) if user_text else '(no user message)'}"


def _apply_limits(body: dict[str, Any], content: str) -> tuple[str, str]:
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str) and s]
    cuts = [content.find(s) for s in stops if s and s in content]
    if cuts:
        content = content[: min(cuts)]
    keys = ("max_tokens", "max_completion_tokens")
    limits: list[int] = [body[k] for k in keys if isinstance(body.get(k), int)]
    if limits and content and estimate_tokens(content) > min(limits):
        return content[: max(0, min(limits)) * 4], "length"
    return content, "stop"


def reasoning_signature(text: str) -> str:
    """Return a deterministic signature for a reasoning text (like Anthropic's opaque signatures)."""
    return "sig-" + hashlib.sha256(text.encode()).hexdigest()[:32]
