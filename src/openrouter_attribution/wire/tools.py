"""Framework-neutral helpers for OpenAI-format tool calls (no I/O, no framework imports).

OpenRouter speaks OpenAI's tool-calling format
(https://openrouter.ai/docs/features/tool-calling): tools are
``{"type": "function", "function": {"name", "description", "parameters"}}``,
answers carry ``tool_calls`` whose ``function.arguments`` is a JSON string, and
streams send those calls in pieces keyed by ``index``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["build_tool_choice", "merge_tool_call_deltas", "parse_tool_arguments"]

_CHOICE_WORDS = frozenset({"auto", "none", "required"})


def build_tool_choice(tool_choice: str | Mapping[str, Any] | None, *, required: bool = False) -> Any:
    """OpenAI ``tool_choice`` for a framework's spelling of it; ``None`` means "do not send".

    Args:
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` (``"any"`` is accepted as its alias),
            the name of one tool (the model must call that one), an OpenAI ``tool_choice`` dict,
            or ``None``.
        required: The caller requires some tool call (used when ``tool_choice`` is ``None``).

    Example:
        >>> build_tool_choice("get_weather")
        {'type': 'function', 'function': {'name': 'get_weather'}}
        >>> build_tool_choice(None, required=True)
        'required'
    """
    if tool_choice is None:
        return "required" if required else None
    if isinstance(tool_choice, Mapping):
        return dict(tool_choice)
    if tool_choice == "any":
        return "required"
    if tool_choice in _CHOICE_WORDS:
        return tool_choice
    return {"type": "function", "function": {"name": tool_choice}}


def merge_tool_call_deltas(calls: list[dict[str, Any]], deltas: Iterable[Mapping[str, Any]]) -> None:
    """Fold the ``tool_calls`` pieces of one stream delta into ``calls`` (OpenAI format, in place).

    Pieces are matched by ``index`` (by position when a provider omits it); ``id``, ``type`` and
    ``function.name`` are taken from the first piece that has them, ``function.arguments`` is
    concatenated.

    Example:
        >>> calls = []
        >>> merge_tool_call_deltas(calls, [{"index": 0, "id": "c1", "function": {"name": "add", "arguments": '{"a"'}}])
        >>> merge_tool_call_deltas(calls, [{"index": 0, "function": {"arguments": ": 1}"}}])
        >>> calls[0]["function"]
        {'name': 'add', 'arguments': '{"a": 1}'}
    """
    for position, piece in enumerate(deltas):
        index = piece.get("index")
        if not isinstance(index, int):
            index = position
        while len(calls) <= index:
            calls.append({"id": None, "type": "function", "function": {"name": None, "arguments": ""}})
        call = calls[index]
        if piece.get("id") and not call["id"]:
            call["id"] = piece["id"]
        if piece.get("type"):
            call["type"] = piece["type"]
        function = piece.get("function") or {}
        if function.get("name") and not call["function"]["name"]:
            call["function"]["name"] = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call["function"]["arguments"] += arguments
        elif isinstance(arguments, Mapping):
            call["function"]["arguments"] += json.dumps(arguments, ensure_ascii=False)


def parse_tool_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The arguments of a tool call as a dict; ``None`` when they are not a JSON object.

    An empty string means "no arguments" (some providers send it for tools without parameters).

    Example:
        >>> parse_tool_arguments('{"a": 1}')
        {'a': 1}
        >>> parse_tool_arguments('{"a": ') is None
        True
    """
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
