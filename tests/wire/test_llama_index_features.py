"""Tool calling, structured output, usage and metadata of the LlamaIndex LLM, over real HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from openrouter_attribution import user_context
from tests.wire.llama_index_helpers import ADD_TOOL, MESSAGES, make_llm


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


MUL_TOOL = FunctionTool.from_defaults(multiply)


class Invoice(BaseModel):
    """An invoice."""

    customer: str
    total: int


# -- tool calling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True])
def test_tool_call_round_trip(fake_openrouter, use_async):
    llm = make_llm(fake_openrouter)
    history = [ChatMessage(role="user", content="Please add 2 and 3")]

    async def chat_with_tools(messages):
        return await llm.achat_with_tools([ADD_TOOL], chat_history=messages)

    def call(messages):
        return (
            asyncio.run(chat_with_tools(messages))
            if use_async
            else llm.chat_with_tools([ADD_TOOL], chat_history=messages)
        )

    response = call(list(history))
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("add", {"a": 2, "b": 3})
    output = ADD_TOOL.call(**selection.tool_kwargs)
    history += [
        response.message,
        ChatMessage(role="tool", content=str(output), additional_kwargs={"tool_call_id": selection.tool_id}),
    ]
    final = call(history)
    assert final.message.content == "The tool returned: 5"
    assert llm.get_tool_calls_from_response(final, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="tool call"):
        llm.get_tool_calls_from_response(final)
    assistant, tool = fake_openrouter.chat_requests[-1].body["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == selection.tool_id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"a": 2, "b": 3}
    assert tool == {"role": "tool", "tool_call_id": selection.tool_id, "content": "5"}


def test_streamed_tool_calls_are_assembled(fake_openrouter):
    llm = make_llm(fake_openrouter)
    tools = [ADD_TOOL, MUL_TOOL]
    responses = list(llm.stream_chat_with_tools(tools, "add and multiply 4 and 5"))
    streamed = llm.get_tool_calls_from_response(responses[-1])
    whole = llm.get_tool_calls_from_response(
        llm.chat_with_tools(tools, "add and multiply 4 and 5", allow_parallel_tool_calls=True)
    )
    assert [c.tool_name for c in streamed] == ["add", "multiply"]
    assert [(c.tool_name, c.tool_kwargs) for c in streamed] == [(c.tool_name, c.tool_kwargs) for c in whole]
    assert streamed[0].tool_kwargs == {"a": 4, "b": 5}
    for partial in responses:  # what FunctionAgent does on every chunk must not raise
        llm.get_tool_calls_from_response(partial, error_on_no_tool_call=False)


@pytest.mark.parametrize(("allow", "expected"), [(False, ["add"]), (True, ["add", "multiply"])])
def test_allow_parallel_tool_calls(fake_openrouter, allow, expected):
    llm = make_llm(fake_openrouter)
    response = llm.chat_with_tools([ADD_TOOL, MUL_TOOL], "add and multiply 4 and 5", allow_parallel_tool_calls=allow)
    assert [c.tool_name for c in llm.get_tool_calls_from_response(response)] == expected
    assert "parallel_tool_calls" not in fake_openrouter.chat_requests[-1].body


@pytest.mark.parametrize(
    ("kwargs", "sent"),
    [
        ({"tool_required": True}, "required"),
        ({"tool_choice": "multiply"}, {"type": "function", "function": {"name": "multiply"}}),
        ({"tool_choice": "none"}, "none"),
        ({}, None),
    ],
)
def test_tool_choice(fake_openrouter, kwargs, sent):
    make_llm(fake_openrouter).chat_with_tools([ADD_TOOL, MUL_TOOL], "add 1 and 2", **kwargs)
    assert fake_openrouter.chat_requests[-1].body.get("tool_choice") == sent


def test_predict_and_call(fake_openrouter):
    with user_context("u-tools"):
        output = make_llm(fake_openrouter).predict_and_call([ADD_TOOL], "add 20 and 22")
    assert output.response == "42"
    assert fake_openrouter.chat_requests[-1].body["user"] == "u-tools"


# -- structured output ------------------------------------------------------------------------------------


def test_structured_predict(fake_openrouter):
    llm = make_llm(fake_openrouter)
    prompt = PromptTemplate("Make an invoice for {name} totalling 120")
    invoice = llm.structured_predict(Invoice, prompt, llm_kwargs={"user": "u-structured"}, name='"ACME"')
    assert isinstance(invoice, Invoice)
    assert invoice.total == 120
    body = fake_openrouter.chat_requests[-1].body
    assert body["user"] == "u-structured"
    assert body["tools"][0]["function"]["name"] == "Invoice"


def test_astructured_predict_and_structured_llm(fake_openrouter):
    llm = make_llm(fake_openrouter)
    with user_context("u-structured"):
        invoice = asyncio.run(llm.astructured_predict(Invoice, PromptTemplate("Invoice for {x} of 7"), x="Bob"))
        response = llm.as_structured_llm(Invoice).chat([ChatMessage(role="user", content="Invoice of 9")])
    assert isinstance(invoice, Invoice)
    assert isinstance(response.raw, Invoice)
    assert response.raw.total == 9
    assert {r.body["user"] for r in fake_openrouter.chat_requests} == {"u-structured"}


# -- usage, metadata and events ---------------------------------------------------------------------------

USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "cost",
              "provider", "model", "generation_id", "attribution"}  # fmt: skip


def test_usage_and_attribution_on_responses(fake_openrouter):
    llm = make_llm(fake_openrouter, reasoning={"effort": "low"})
    with user_context("u-usage", session_id="s-usage"):
        response = llm.chat(MESSAGES)
        streamed = list(llm.stream_chat(MESSAGES))
    for final in (response, streamed[-1]):
        extra = final.additional_kwargs
        assert set(extra) >= USAGE_KEYS
        assert extra["total_tokens"] == extra["prompt_tokens"] + extra["completion_tokens"]
        assert extra["reasoning_tokens"] > 0
        assert extra["cost"] > 0
        assert (extra["provider"], extra["model"]) == ("OpenAI", "openai/gpt-4o-mini")
        assert extra["attribution"] == {"user": "u-usage", "session_id": "s-usage"}
    assert response.raw["id"] == response.additional_kwargs["generation_id"]
    assert response.raw["usage"]["total_tokens"] == response.additional_kwargs["total_tokens"]
    assert streamed[-1].raw["usage"]["total_tokens"] == streamed[-1].additional_kwargs["total_tokens"]
    assert streamed[-1].raw["attribution"] == {"user": "u-usage", "session_id": "s-usage"}
    assert "".join(r.delta for r in streamed) == streamed[-1].message.content == response.message.content


def test_reasoning_survives_multi_turn(fake_openrouter):
    llm = make_llm(fake_openrouter, reasoning={"effort": "low"})
    first = llm.chat(MESSAGES)
    streamed = list(llm.stream_chat(MESSAGES))[-1]
    assert (
        first.message.additional_kwargs["reasoning_details"] == streamed.message.additional_kwargs["reasoning_details"]
    )
    assert any(r.additional_kwargs.get("thinking_delta") for r in llm.stream_chat(MESSAGES))
    llm.chat([*MESSAGES, first.message, ChatMessage(role="user", content="And again")])
    assistant = fake_openrouter.chat_requests[-1].body["messages"][1]
    assert assistant["reasoning_details"] == first.raw["choices"][0]["message"]["reasoning_details"]
    assert assistant["reasoning"] == first.message.additional_kwargs["reasoning"]


class _Collector(BaseEventHandler):
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "Collector"

    def handle(self, event, **kwargs) -> None:
        if isinstance(event, LLMChatEndEvent):
            self.events.append(event)


@pytest.fixture
def chat_end_events():
    handler = _Collector(events=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler.events
    dispatcher.event_handlers.remove(handler)


def test_instrumentation_handlers_see_usage_and_attribution(fake_openrouter, chat_end_events):
    llm = make_llm(fake_openrouter)
    with user_context("u-events"):
        llm.chat(MESSAGES)
        list(llm.stream_chat(MESSAGES))
        asyncio.run(llm.achat(MESSAGES))
    assert len(chat_end_events) == 3
    for event in chat_end_events:
        assert event.response.additional_kwargs["attribution"] == {"user": "u-events"}
        assert event.response.additional_kwargs["total_tokens"] > 0


def test_usage_ledger_records_llama_index_calls(fake_openrouter):
    from openrouter_attribution import UsageLedger

    with UsageLedger(":memory:") as ledger:
        llm = make_llm(fake_openrouter, ledger=ledger)
        llm.chat(MESSAGES, user="u-ledger")
        list(llm.stream_complete("hi", user="u-ledger"))
        ledger.flush()
        records = list(ledger.records(user="u-ledger"))
    assert [(r.framework, r.streamed) for r in records] == [("llama_index", False), ("llama_index", True)]
    assert all(r.cost is not None and r.cost > 0 for r in records)


def test_metadata():
    from openrouter_attribution.llama_index import OpenRouter

    known = OpenRouter(model="anthropic/claude-3.5-sonnet", api_key="k").metadata
    assert (known.context_window, known.num_output, known.model_name) == (200_000, 8_192, "anthropic/claude-3.5-sonnet")
    assert known.is_chat_model
    assert known.is_function_calling_model
    unknown = OpenRouter(model="brand-new/model-x:free", api_key="k").metadata
    assert unknown.context_window >= 8_192
    assert 0 < unknown.num_output < unknown.context_window
    custom = OpenRouter(model="brand-new/model-x", api_key="k", context_window=1000, max_tokens=100).metadata
    assert (custom.context_window, custom.num_output) == (1000, 100)


# -- configuration ----------------------------------------------------------------------------------------


def test_key_never_serialized(fake_openrouter):
    llm = make_llm(fake_openrouter)
    secret = fake_openrouter.api_key
    assert secret not in repr(llm)
    assert secret not in str(llm)
    assert secret not in llm.to_json()
    assert "api_key" not in llm.to_dict()
    assert secret not in json.dumps(llm.to_payload())
    assert llm.api_base == fake_openrouter.base_url


def test_configuration_errors(monkeypatch):
    from openrouter_attribution import ConfigurationError
    from openrouter_attribution.llama_index import OpenRouter

    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="API key"):
        OpenRouter(model="openai/gpt-4o-mini")
    with pytest.raises(ConfigurationError, match="api_base"):
        OpenRouter(api_key="k", api_base="http://a/v1", base_url="http://b/v1")
    monkeypatch.setenv("OPENROUTER_API_KEY", "from-env")
    assert OpenRouter().api_key.get_secret_value() == "from-env"


def test_headers(fake_openrouter):
    llm = make_llm(fake_openrouter, app_title="My App", app_url="https://example.com", default_headers={"X-A": "1"})
    llm.chat(MESSAGES)
    headers = fake_openrouter.chat_requests[-1].headers
    assert headers["X-Title"] == "My App"
    assert headers["HTTP-Referer"] == "https://example.com"
    assert headers["X-A"] == "1"
    assert headers["Authorization"] == f"Bearer {fake_openrouter.api_key}"


def test_tool_call_blocks_of_a_response(fake_openrouter):
    response = make_llm(fake_openrouter).chat_with_tools([ADD_TOOL], "add 1 and 2")
    (block,) = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert block.tool_kwargs == {"a": 1, "b": 2}
    assert response.message.content is None
