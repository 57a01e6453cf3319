"""ChatOpenRouter(use_responses_api=True) on the wire: every POST /responses names the end-user, stays
stateless, and goes through the same ledger, budget and errors as chat."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.tools import tool
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from openrouter_attribution import (
    BudgetExceededError,
    ConfigurationError,
    UsageLedger,
    UserBudget,
    UserIdError,
    errors,
)
from tests.wire.conftest import STATUS_FAULTS

QUESTION = {"messages": [("human", "Where is order 7? use lookup")]}


@dataclass
class Context:
    user_id: str | None = None
    session_id: str | None = None


@tool
def lookup(order_id: int) -> str:
    """Look up an order."""
    return f"order {order_id} shipped"


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def sent(server: Any, field: str) -> list[Any]:
    return [request.body.get(field) for request in server.responses_requests]


@pytest.fixture
def make_responses(make_chat):
    return lambda **kwargs: make_chat(use_responses_api=True, **kwargs)


async def _drain(stream: Any) -> list[Any]:
    return [item async for item in stream]


RUN_STYLES = {
    "invoke": lambda agent, ctx: agent.invoke(QUESTION, context=ctx),
    "ainvoke": lambda agent, ctx: asyncio.run(agent.ainvoke(QUESTION, context=ctx)),
    "stream": lambda agent, ctx: list(agent.stream(QUESTION, context=ctx, stream_mode="messages")),
    "astream": lambda agent, ctx: asyncio.run(_drain(agent.astream(QUESTION, context=ctx, stream_mode="messages"))),
}


@pytest.mark.parametrize("style", RUN_STYLES)
def test_create_agent_sends_the_context_user_as_user_and_safety_identifier(fake_openrouter, make_responses, style):
    agent = create_agent(make_responses(), tools=[lookup], context_schema=Context)
    result = RUN_STYLES[style](agent, Context(user_id="app_alice", session_id="chat-1"))
    # The tool call, then the answer built from the tool's result.
    assert sent(fake_openrouter, "user") == ["app_alice", "app_alice"]
    assert sent(fake_openrouter, "safety_identifier") == ["app_alice", "app_alice"]
    assert sent(fake_openrouter, "session_id") == ["chat-1", "chat-1"]
    assert sent(fake_openrouter, "store") == [False, False]
    assert fake_openrouter.chat_requests == []
    second = fake_openrouter.responses_requests[1].body["input"]
    call = next(item for item in second if item["type"] == "function_call")
    output = next(item for item in second if item["type"] == "function_call_output")
    assert (call["name"], output["call_id"], output["output"]) == ("lookup", call["call_id"], "order 7 shipped")
    assert all(bool(r.body.get("stream")) == style.endswith("stream") for r in fake_openrouter.responses_requests)
    if style in ("invoke", "ainvoke"):
        assert result["messages"][-1].content == "The tool returned: order 7 shipped"


def test_the_id_as_sent_under_a_hashing_policy(fake_openrouter, make_responses):
    from openrouter_attribution import UserIdPolicy

    model = make_responses(user_policy=UserIdPolicy(hash_key="k" * 32))
    model.invoke("hi", user="alice")
    (request,) = fake_openrouter.responses_requests
    assert request.body["user"] == request.body["safety_identifier"] != "alice"


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_with_structured_output_returns_the_parsed_object(fake_openrouter, make_responses, method):
    prompt = "Describe 'Ada' aged 36 as 'name' and 'age'"
    schema = Person if method != "json_mode" else None
    parsed = make_responses().with_structured_output(schema, method=method).invoke(prompt, user="app_1")
    body = fake_openrouter.responses_requests[-1].body
    if method == "json_schema":
        assert parsed == Person(name="Ada", age=36)
        assert body["text"]["format"]["type"] == "json_schema"
    elif method == "function_calling":
        assert parsed == Person(name="Ada", age=36)
        assert body["tool_choice"] == {"type": "function", "name": "Person"}
    else:
        assert set(parsed) == {"Ada", "name", "age"}
        assert body["text"] == {"format": {"type": "json_object"}}


def test_reasoning_items_are_kept_and_sent_back_unchanged(fake_openrouter, make_responses):
    model = make_responses(reasoning={"effort": "low"}).bind(include=["reasoning.encrypted_content"])
    first = model.invoke("Think about 'tea'", user="app_1")
    assert fake_openrouter.responses_requests[0].body["include"] == ["reasoning.encrypted_content"]
    (item,) = first.additional_kwargs["reasoning_items"]
    assert item["type"] == "reasoning"
    assert item["encrypted_content"]
    streamed = None
    for chunk in model.stream("Think about 'tea'", user="app_1"):
        streamed = chunk if streamed is None else streamed + chunk
    (streamed_item,) = streamed.additional_kwargs["reasoning_items"]
    assert {**streamed_item, "id": item["id"]} == item  # the same item, of another generation
    model.invoke([HumanMessage("Think about 'tea'"), first, HumanMessage("and now?")], user="app_1")
    replayed = fake_openrouter.responses_requests[-1].body["input"]
    assert replayed[1] == item  # before the assistant's text, exactly as received
    assert replayed[2] == {"type": "message", "role": "assistant", "content": first.content}


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_the_ledger_records_each_request_with_tokens_and_cost(fake_openrouter, make_responses, tmp_path, streaming):
    with UsageLedger(tmp_path / "usage.db") as ledger:
        model = make_responses(ledger=ledger)
        for number in range(2):  # different prompts: no prompt cache, so the billed cost is usage.cost
            if streaming:
                list(model.stream(f"hello {number}", user="app_1"))
            else:
                model.invoke(f"hello {number}", user="app_1")
        records = list(ledger.records(user="app_1"))
    assert len(records) == 2
    served = [fake_openrouter.generations[r.generation_id] for r in records]
    for record, generation in zip(records, served, strict=True):
        assert record.kind == "responses"
        assert record.streamed is streaming
        assert record.prompt_tokens == generation["tokens_prompt"]
        assert record.completion_tokens == generation["tokens_completion"]
        assert record.cost == Decimal(str(generation["total_cost"])) > 0


def test_a_budget_refuses_before_sending(fake_openrouter, make_responses, tmp_path):
    with UsageLedger(tmp_path / "usage.db") as ledger:
        budget = UserBudget(max_cost=Decimal("0.00002"), reserve=Decimal("0.00001"))
        model = make_responses(ledger=ledger, budget=budget)
        model.invoke("Say hello", user="app_1")
        model.invoke("Say hello", user="app_1")  # spent < 0.00001, + reserve 0.00001 <= 0.00002: still fits
        with pytest.raises(BudgetExceededError) as refused:
            model.invoke("Say hello", user="app_1")
        assert refused.value.spent == sum(r.cost for r in ledger.records(user="app_1"))
    assert len(fake_openrouter.responses_requests) == 2


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize(("fault", "error_type"), STATUS_FAULTS)
def test_http_faults_map_to_the_typed_errors_of_chat(make_responses, fault, error_type, streaming):
    model = make_responses(default_headers={"X-Fake-Fault": fault})
    with pytest.raises(error_type) as caught:
        list(model.stream("hi")) if streaming else model.invoke("hi")
    assert caught.value.status_code == int(fault)


GENERATION_FAULTS = [
    ("mid-stream-error", errors.ProviderUnavailableError),
    ("malformed-chunk", errors.InvalidResponseError),
    ("drop-connection", errors.APIConnectionError),
    ("truncated-stream", errors.InvalidResponseError),
    ("error-body", errors.ProviderUnavailableError),
    ("empty-body", errors.InvalidResponseError),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize(("fault", "error_type"), GENERATION_FAULTS)
def test_generation_faults_map_to_the_same_errors_as_chat(make_chat, fault, error_type, streaming):
    raised = []
    for responses in (False, True):
        model = make_chat(use_responses_api=responses, default_headers={"X-Fake-Fault": fault})
        with pytest.raises(error_type) as caught:
            list(model.stream("hi there friend")) if streaming else model.invoke("hi there friend")
        raised.append(type(caught.value))
    assert raised[0] is raised[1]


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_a_slow_first_byte_times_out_as_with_chat(make_responses, streaming):
    model = make_responses(timeout=0.3, default_headers={"X-Fake-Fault": "slow-first-byte"})
    with pytest.raises(errors.APITimeoutError):
        list(model.stream("hi")) if streaming else model.invoke("hi")


def test_a_truncated_stream_is_never_a_quiet_partial_answer(make_responses):
    with pytest.raises(errors.TruncatedStreamError):
        list(make_responses(default_headers={"X-Fake-Fault": "truncated-stream"}).stream("hi there friend"))


@pytest.mark.parametrize("bad_user", ["u" * 257, "alice@example.com"], ids=["too-long", "e-mail"])
def test_a_bad_user_is_refused_with_nothing_sent(fake_openrouter, make_responses, bad_user):
    with pytest.raises(UserIdError) as caught:
        make_responses().invoke("hi", user=bad_user)
    assert bad_user not in str(caught.value)
    assert fake_openrouter.requests == []


def test_previous_response_id_is_refused_before_sending(fake_openrouter, make_responses):
    with pytest.raises(ConfigurationError, match="stateless"):
        make_responses().invoke("hi", previous_response_id="resp_1")
    with pytest.raises(ConfigurationError, match="stateless"):
        make_responses(extra_body={"previous_response_id": "resp_1"})
    with pytest.raises(ConfigurationError, match="store must be false"):
        make_responses(extra_body={"store": True})
    assert fake_openrouter.requests == []


def test_chat_only_options_are_refused_at_construction(make_responses):
    with pytest.raises(ConfigurationError, match="seed"):
        make_responses(seed=1)


def test_async_stream_carries_usage(fake_openrouter, make_responses):
    async def run() -> Any:
        full = None
        async for chunk in make_responses().astream("hello there", user="app_1"):
            full = chunk if full is None else full + chunk
        return full

    full = asyncio.run(run())
    assert full.content == "[openai/gpt-4o-mini] Reply to: hello there"
    assert full.usage_metadata["output_tokens"] > 0
    assert full.response_metadata["cost"] > 0
    assert sent(fake_openrouter, "safety_identifier") == ["app_1"]


def test_the_budget_prices_a_responses_body_as_a_chat_call(fake_openrouter, make_responses, tmp_path):
    with UsageLedger(tmp_path / "usage.db") as ledger:
        model = make_responses(ledger=ledger, budget=UserBudget(max_cost=Decimal("0.000001")), max_tokens=50)
        with pytest.raises(BudgetExceededError) as refused:
            model.invoke("Say hello", user="app_1")
    # The ceiling: the prompt's tokens and max_output_tokens at the chat model's prices, none of it sent.
    assert Decimal(0) < refused.value.requested < Decimal("0.0001")
    # Prices come from GET /models (cached per process, so an earlier test may have fetched them).
    assert [request.path for request in fake_openrouter.requests if request.path != "/api/v1/models"] == []


@pytest.mark.parametrize(
    "options",
    [{"previous_response_id": "resp_1"}, {"use_previous_response_id": True}, {"store": True},
     {"model_kwargs": {"previous_response_id": "resp_1"}}],
    ids=["previous_response_id", "use_previous_response_id", "store", "model_kwargs"],
)  # fmt: skip
def test_chat_openai_stateful_options_are_refused_at_construction(make_responses, options):
    with pytest.raises(ConfigurationError, match="stateless"):
        make_responses(**options)


def test_chat_openai_content_block_format_is_refused_with_the_switch_to_use(make_responses):
    with pytest.raises(ConfigurationError, match="use_responses_api=True"):
        make_responses(output_version="responses/v1")


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [("slow-first-byte", errors.APITimeoutError), ("drop-connection", errors.APIConnectionError),
     ("429", errors.RateLimitError), ("mid-stream-error", errors.ProviderUnavailableError),
     ("truncated-stream", errors.TruncatedStreamError)],
)  # fmt: skip
@pytest.mark.parametrize("streaming", [False, True], ids=["ainvoke", "astream"])
def test_faults_on_the_async_transport(make_responses, fault, error_type, streaming):
    model = make_responses(timeout=0.3, default_headers={"X-Fake-Fault": fault})

    async def run() -> None:
        if not streaming:
            await model.ainvoke("hi there friend")
            return
        async for _ in model.astream("hi there friend"):
            pass

    expected = errors.InvalidResponseError if fault == "truncated-stream" and not streaming else error_type
    with pytest.raises(expected):
        asyncio.run(run())


def test_streaming_true_makes_invoke_stream_the_responses_call(fake_openrouter, make_responses):
    answer = make_responses(streaming=True).invoke("hello there", user="app_1")
    assert answer.content == "[openai/gpt-4o-mini] Reply to: hello there"
    assert answer.usage_metadata["total_tokens"] > 0
    assert sent(fake_openrouter, "stream") == [True]


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_per_user_keys_send_and_meter_responses_calls(fake_openrouter, make_responses, streaming):
    from openrouter_attribution import OpenRouterUserKeys

    server = fake_openrouter
    keys = OpenRouterUserKeys(secret="a-test-secret-of-at-least-32-characters!",
                              management_key=server.management_key, base_url=server.base_url)  # fmt: skip
    model = make_responses(user_keys=keys)
    list(model.stream("hello", user="app_keyed")) if streaming else model.invoke("hello", user="app_keyed")
    (request,) = fake_openrouter.responses_requests
    assert request.headers["authorization"] != f"Bearer {fake_openrouter.api_key}"  # the user's own key
    assert keys.usage("app_keyed").usage > 0  # OpenRouter meters the key, streamed or not
