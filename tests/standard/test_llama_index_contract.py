"""A small contract suite for the LlamaIndex ``OpenRouter`` LLM (LlamaIndex has no standard test suite).

Every public call style must honour the same invariants, checked against the local server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM

from openrouter_attribution.llama_index import OpenRouter

PROMPT = "Write one friendly sentence"
MESSAGES = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content=PROMPT)]


async def _collect_async(gen: Any) -> list[Any]:
    return [item async for item in gen]


def _run(llm: OpenRouter, style: str) -> list[Any]:
    """All responses of one call, in order (a single one for non-streamed styles)."""
    calls = {
        "chat": lambda: [llm.chat(MESSAGES)],
        "achat": lambda: [asyncio.run(llm.achat(MESSAGES))],
        "stream_chat": lambda: list(llm.stream_chat(MESSAGES)),
        "astream_chat": lambda: asyncio.run(_achain(llm.astream_chat(MESSAGES))),
        "complete": lambda: [llm.complete(PROMPT)],
        "acomplete": lambda: [asyncio.run(llm.acomplete(PROMPT))],
        "stream_complete": lambda: list(llm.stream_complete(PROMPT)),
        "astream_complete": lambda: asyncio.run(_achain(llm.astream_complete(PROMPT))),
    }
    return calls[style]()


async def _achain(awaitable: Any) -> list[Any]:
    return await _collect_async(await awaitable)


STYLES = ["chat", "achat", "stream_chat", "astream_chat", "complete", "acomplete", "stream_complete",
          "astream_complete"]  # fmt: skip


@pytest.fixture
def llm(fake_openrouter) -> OpenRouter:
    # Every call is attributed (to the model's default user), as calls in an app should be.
    return OpenRouter(model="openai/gpt-4o-mini", api_base=fake_openrouter.base_url,
                      api_key=fake_openrouter.api_key, max_retries=0, user="app_contract")  # fmt: skip


@pytest.mark.parametrize("style", STYLES)
def test_response_type_and_text(llm, style):
    responses = _run(llm, style)
    expected = CompletionResponse if "complete" in style else ChatResponse
    assert responses
    assert all(isinstance(response, expected) for response in responses)
    final = responses[-1]
    text = final.text if isinstance(final, CompletionResponse) else final.message.content
    assert isinstance(text, str)
    assert text.strip()
    if isinstance(final, ChatResponse):
        assert final.message.role == MessageRole.ASSISTANT


@pytest.mark.parametrize("style", STYLES)
def test_usage_present(llm, style):
    extra = _run(llm, style)[-1].additional_kwargs
    assert extra["prompt_tokens"] > 0
    assert extra["completion_tokens"] > 0
    assert extra["total_tokens"] == extra["prompt_tokens"] + extra["completion_tokens"]
    assert extra["generation_id"]
    assert extra["model"]
    assert extra["provider"]
    assert extra["attribution"] == {"user": "app_contract"}


@pytest.mark.parametrize("style", [s for s in STYLES if "stream" in s])
def test_streamed_text_is_the_concatenation_of_deltas(llm, style):
    responses = _run(llm, style)
    assert len(responses) > 2, "the answer arrives in several pieces"
    deltas = "".join(response.delta or "" for response in responses)
    texts = [_text(response) for response in responses]
    assert deltas == texts[-1]
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))  # cumulative


STREAMED = {"chat": "stream_chat", "achat": "astream_chat", "complete": "stream_complete",
            "acomplete": "astream_complete"}  # fmt: skip


def _text(response: Any) -> str:
    return response.text if isinstance(response, CompletionResponse) else response.message.content


@pytest.mark.parametrize("style", sorted(STREAMED))
def test_streamed_and_whole_answers_agree(llm, style):
    assert _text(_run(llm, style)[-1]) == _text(_run(llm, STREAMED[style])[-1])


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet", "someone/unknown-model"])
def test_metadata_is_sane(model):
    llm = OpenRouter(model=model, api_key="sk-test")
    meta = llm.metadata
    assert 0 < meta.num_output < meta.context_window
    assert meta.is_chat_model
    assert meta.is_function_calling_model
    assert meta.model_name == model
    assert isinstance(llm, FunctionCallingLLM)


def test_serialization_round_trip(llm, fake_openrouter):
    data = llm.to_dict()
    assert data["class_name"] == OpenRouter.class_name()
    rebuilt = OpenRouter.from_dict(data, api_key=fake_openrouter.api_key)
    assert rebuilt.to_dict() == data
    assert rebuilt.chat(MESSAGES).message.content
