"""Shared helpers of the LlamaIndex wire tests: a model pointed at the local server, call styles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.tools import FunctionTool

from openrouter_attribution.llama_index import OpenRouter

MODEL = "openai/gpt-4o-mini"
MESSAGES = [ChatMessage(role="user", content="Say hello")]


def make_llm(server: Any, **kwargs: Any) -> OpenRouter:
    """An ``OpenRouter`` LLM for the local server, without retries unless asked.

    ``require_user=False`` unless a test asks otherwise, deliberately: most tests are about something
    other than attribution; those about attribution pass a user and assert what was sent.
    """
    params: dict[str, Any] = {"model": MODEL, "api_base": server.base_url, "api_key": server.api_key,
                              "max_retries": 0, "require_user": False}  # fmt: skip
    params.update(kwargs)
    return OpenRouter(**params)


def sent(server: Any, field: str) -> list[Any]:
    """The value of ``field`` in every chat request the server recorded, in order."""
    return [request.body.get(field) for request in server.chat_requests]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD_TOOL = FunctionTool.from_defaults(add)


async def _drain_async(gen: Any) -> Any:
    last = None
    async for last in gen:  # noqa: B007 - the last response is the result
        pass
    return last


def _drain(gen: Any) -> Any:
    last = None
    for last in gen:  # noqa: B007
        pass
    return last


# Every public call style of the LLM, as (name, call) where call(llm, **kwargs) returns the final response.
CALL_STYLES: dict[str, Callable[..., ChatResponse | CompletionResponse]] = {
    "chat": lambda llm, **kw: llm.chat(MESSAGES, **kw),
    "achat": lambda llm, **kw: asyncio.run(llm.achat(MESSAGES, **kw)),
    "stream_chat": lambda llm, **kw: _drain(llm.stream_chat(MESSAGES, **kw)),
    "astream_chat": lambda llm, **kw: asyncio.run(_adrain_chat(llm, **kw)),
    "complete": lambda llm, **kw: llm.complete("Say hello", **kw),
    "acomplete": lambda llm, **kw: asyncio.run(llm.acomplete("Say hello", **kw)),
    "stream_complete": lambda llm, **kw: _drain(llm.stream_complete("Say hello", **kw)),
    "astream_complete": lambda llm, **kw: asyncio.run(_adrain_complete(llm, **kw)),
    "chat_with_tools": lambda llm, **kw: llm.chat_with_tools([ADD_TOOL], "add 2 and 3", **kw),
    "achat_with_tools": lambda llm, **kw: asyncio.run(llm.achat_with_tools([ADD_TOOL], "add 2 and 3", **kw)),
    "stream_chat_with_tools": lambda llm, **kw: _drain(llm.stream_chat_with_tools([ADD_TOOL], "add 2 and 3", **kw)),
    "astream_chat_with_tools": lambda llm, **kw: asyncio.run(_adrain_tools(llm, **kw)),
}


async def _adrain_chat(llm: OpenRouter, **kw: Any) -> Any:
    return await _drain_async(await llm.astream_chat(MESSAGES, **kw))


async def _adrain_complete(llm: OpenRouter, **kw: Any) -> Any:
    return await _drain_async(await llm.astream_complete("Say hello", **kw))


async def _adrain_tools(llm: OpenRouter, **kw: Any) -> Any:
    return await _drain_async(await llm.astream_chat_with_tools([ADD_TOOL], "add 2 and 3", **kw))
