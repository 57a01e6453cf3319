"""Tools, structured output, usage, reasoning, OpenRouter options and headers, as they arrive on the wire."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from langchain_core.load import dumpd, dumps
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, Field


class Weather(BaseModel):
    """Get the weather for a city."""

    city: str = Field(description="City name")


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


def _tool_choice_sent(server):
    return server.chat_requests[-1].body.get("tool_choice")


@pytest.mark.parametrize(
    ("choice", "on_wire"),
    [
        (None, None),
        ("auto", "auto"),
        ("none", "none"),
        ("any", "required"),
        ("required", "required"),
        ("Weather", {"type": "function", "function": {"name": "Weather"}}),
        (True, {"type": "function", "function": {"name": "Weather"}}),
    ],
)
def test_tool_choice_on_the_wire(fake_openrouter, make_chat, choice, on_wire):
    answer = make_chat().bind_tools([Weather], tool_choice=choice).invoke("weather in 'Oslo'?")
    assert _tool_choice_sent(fake_openrouter) == on_wire
    tools = fake_openrouter.chat_requests[-1].body["tools"]
    assert tools[0]["function"]["name"] == "Weather"
    if choice != "none":
        assert answer.tool_calls[0]["name"] == "Weather"
        assert answer.tool_calls[0]["args"] == {"city": "Oslo"}


def test_tool_round_trip_sends_tool_calls_and_results_back(fake_openrouter, make_chat):
    model = make_chat().bind_tools([Weather])
    first = model.invoke("weather in 'Rome'")
    call = first.tool_calls[0]
    final = model.invoke(
        [HumanMessage("weather in 'Rome'"), first, ToolMessage("22C and sunny", tool_call_id=call["id"])]
    )
    messages = fake_openrouter.chat_requests[-1].body["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call["id"]
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Rome"}
    assert messages[2] == {"role": "tool", "tool_call_id": call["id"], "content": "22C and sunny"}
    assert "22C and sunny" in final.content


def test_streamed_tool_calls_assemble(fake_openrouter, make_chat):
    chunks = list(make_chat().bind_tools([Weather], tool_choice="any").stream("weather in 'Lima'"))
    message = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk
    assert message.tool_calls[0]["name"] == "Weather"
    assert message.tool_calls[0]["args"] == {"city": "Lima"}


def test_parallel_tool_calls_flag(fake_openrouter, make_chat):
    make_chat().bind_tools([Weather], parallel_tool_calls=False).invoke("weather in 'Oslo'")
    assert fake_openrouter.chat_requests[-1].body["parallel_tool_calls"] is False


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_methods(fake_openrouter, make_chat, method):
    structured = make_chat().with_structured_output(Joke, method=method)
    joke = structured.invoke("Tell me a joke about cats")
    assert isinstance(joke, Joke)
    body = fake_openrouter.chat_requests[-1].body
    if method == "function_calling":
        assert body["tool_choice"] == {"type": "function", "function": {"name": "Joke"}}
    else:
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["setup", "punchline"]


def test_json_mode_returns_the_parsed_object(fake_openrouter, make_chat):
    result = make_chat().with_structured_output(method="json_mode").invoke("Answer as a JSON object")
    assert isinstance(result, dict)
    assert result
    assert fake_openrouter.chat_requests[-1].body["response_format"] == {"type": "json_object"}


def test_structured_output_include_raw(fake_openrouter, make_chat):
    result = make_chat().with_structured_output(Joke, include_raw=True).invoke("a joke")
    assert isinstance(result["raw"], AIMessage)
    assert isinstance(result["parsed"], Joke)
    assert result["parsing_error"] is None


def test_usage_and_response_metadata(fake_openrouter, make_chat):
    answer = make_chat().invoke("hi", user="app_7", session_id="s-7")
    body = fake_openrouter.chat_requests[-1]
    generation = fake_openrouter.generations[answer.response_metadata["generation_id"]]
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] > 0
    assert answer.usage_metadata["output_tokens"] > 0
    meta = answer.response_metadata
    assert meta["attribution"] == {"user": "app_7", "session_id": "s-7"}
    assert meta["model_name"] == "openai/gpt-4o-mini"
    assert meta["provider"]
    assert Decimal(str(meta["cost"])) > 0
    assert body.body["user"] == "app_7"
    assert generation is not None


def test_cached_and_reasoning_tokens_reach_usage_metadata(fake_openrouter, make_chat):
    model = make_chat(reasoning={"effort": "low"})
    model.invoke("same prompt", user="app_1")
    second = model.invoke("same prompt", user="app_1")
    usage = second.usage_metadata
    assert usage is not None
    assert usage["input_token_details"]["cache_read"] > 0
    assert usage["output_token_details"]["reasoning"] > 0


def test_streamed_usage_and_metadata(fake_openrouter, make_chat):
    chunks = list(make_chat().stream("hi", user="app_s"))
    message = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk
    assert message.content
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] > 0
    assert message.response_metadata["attribution"] == {"user": "app_s"}
    assert message.response_metadata["finish_reason"] == "stop"


def test_reasoning_details_survive_a_multi_turn_conversation(fake_openrouter, make_chat):
    model = make_chat(model="deepseek/deepseek-r1", reasoning={"effort": "high"})
    first = model.invoke("think about 2+2")
    assert first.additional_kwargs["reasoning_details"]
    model.invoke([HumanMessage("think about 2+2"), first, HumanMessage("and 3+3?")])
    sent_back = fake_openrouter.chat_requests[-1].body["messages"][1]
    assert sent_back["reasoning_details"] == first.additional_kwargs["reasoning_details"]


def test_openrouter_options_and_headers_on_the_wire(fake_openrouter, make_chat):
    model = make_chat(
        models=["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"],
        provider={"order": ["openai"], "allow_fallbacks": False},
        route="fallback",
        reasoning={"effort": "low"},
        plugins=[{"id": "web"}],
        transforms=["middle-out"],
        temperature=0.3,
        top_k=5,
        app_url="https://example.test/app",
        app_title="Example App",
    )
    model.invoke("hi", seed=7)
    request = fake_openrouter.chat_requests[-1]
    for key, value in {
        "models": ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"],
        "provider": {"order": ["openai"], "allow_fallbacks": False},
        "route": "fallback",
        "reasoning": {"effort": "low"},
        "plugins": [{"id": "web"}],
        "transforms": ["middle-out"],
        "temperature": 0.3,
        "top_k": 5,
        "seed": 7,
    }.items():
        assert request.body[key] == value, key
    assert request.headers["HTTP-Referer"] == "https://example.test/app"
    assert request.headers["X-Title"] == "Example App"


def test_no_hidden_defaults(fake_openrouter, make_chat):
    make_chat().invoke("hi")
    assert set(fake_openrouter.chat_requests[-1].body) == {"model", "messages"}


def test_stop_from_call_and_model(fake_openrouter, make_chat):
    make_chat(stop=["END"]).invoke("hi")
    make_chat().invoke("hi", stop=["you"])
    assert [r.body["stop"] for r in fake_openrouter.chat_requests] == [["END"], ["you"]]


def test_api_key_never_leaks(fake_openrouter, make_chat, caplog):
    caplog.set_level(logging.DEBUG)
    model = make_chat()
    model.invoke("hi")
    key = fake_openrouter.api_key
    assert key not in repr(model)
    assert key not in str(model)
    assert key not in dumps(model)
    assert key not in json.dumps(dumpd(model), default=str)
    assert key not in caplog.text


def test_trace_is_filled_from_the_langchain_run_tree(fake_openrouter, make_chat):
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tracers.base import BaseTracer

    class KeepRuns(BaseTracer):
        def __init__(self) -> None:
            super().__init__()
            self.roots: list = []

        def _persist_run(self, run) -> None:
            self.roots.append(run)

    tracer = KeepRuns()
    model = make_chat(trace={"trace_name": "checkout"})
    inner = RunnableLambda(lambda text: text, name="prepare") | model
    outer = RunnableLambda(lambda text, config: inner.invoke(text, config=config), name="checkout-flow")
    outer.invoke("hi", config={"callbacks": [tracer]})
    trace = fake_openrouter.chat_requests[-1].body["trace"]
    (root,) = tracer.roots
    sequence = next(child for child in root.child_runs if child.name != "prepare")
    assert trace["trace_id"] == str(root.id)
    assert trace["parent_span_id"] == str(sequence.id)
    assert trace["span_name"] == trace["generation_name"] == "ChatOpenRouter"
    assert trace["trace_name"] == "checkout"


def test_no_trace_unless_asked(fake_openrouter, make_chat):
    make_chat().invoke("hi")
    make_chat(trace=True).invoke("hi")
    bodies = [r.body for r in fake_openrouter.chat_requests]
    assert "trace" not in bodies[0]
    assert set(bodies[1]["trace"]) == {"trace_id", "span_name", "generation_name"}
