"""Ledger handlers attached to models built without ``ledger=``: records match what the server charged."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.llms import MockLLM

from openrouter_attribution import UsageLedger, UserIdPolicy, errors, user_context
from openrouter_attribution.langchain import ChatOpenRouter, UsageCallbackHandler
from openrouter_attribution.llama_index import UsageEventHandler, attach_usage_handler
from tests.wire.llama_index_helpers import MESSAGES, make_llm

HASH_KEY = "usage-handler-test-key-0123456789"


@pytest.fixture
def ledger():
    with UsageLedger(":memory:") as ledger:
        yield ledger


@pytest.fixture
def li_handler(ledger):
    handler = attach_usage_handler(ledger)
    yield handler
    get_dispatcher().event_handlers.remove(handler)


def _server_charges(server: Any) -> dict[str, tuple[str | None, Decimal]]:
    """generation id -> (user, reported cost) as the server recorded them (billed + cache discount)."""
    return {gid: (g["user"], Decimal(str(g["total_cost"])) + Decimal(str(g["cache_discount"] or 0)))
            for gid, g in server.generations.items()}  # fmt: skip


def _recorded_charges(ledger: UsageLedger) -> dict[str | None, tuple[str | None, Decimal | None]]:
    return {r.generation_id: (r.user, r.cost) for r in ledger.records()}


# -- LangChain ------------------------------------------------------------------------------------


def test_langchain_handler_records_each_call_as_the_server_charged_it(fake_openrouter, make_chat, ledger):
    handler = UsageCallbackHandler(ledger)
    model = make_chat()
    config: Any = {"callbacks": [handler], "configurable": {"user_id": "u1", "session_id": "s1"}}
    model.invoke("first question", config=config)
    model.invoke("second question", config=config)
    asyncio.run(model.ainvoke("async question", config={"callbacks": [handler], "metadata": {"user_id": "u1b"}}))
    assert len(fake_openrouter.generations) == 3
    assert _recorded_charges(ledger) == _server_charges(fake_openrouter)
    records = list(ledger.records())
    assert all(r.framework == "langchain" and r.outcome == "ok" and not r.streamed for r in records)
    assert all(r.model_requested == "openai/gpt-4o-mini" and r.model_used and r.provider for r in records)
    assert all(r.prompt_tokens and r.completion_tokens and r.latency_s is not None for r in records)
    assert sorted(r.session_id or "" for r in records) == ["", "s1", "s1"]
    assert len(handler._calls) == 0  # state is dropped at the end of every run


def test_langchain_handler_times_the_first_token_of_a_stream(fake_openrouter, make_chat, ledger):
    handler = UsageCallbackHandler(ledger)
    config: Any = {"callbacks": [handler], "configurable": {"user_id": "u1"}}
    chunks = list(make_chat().stream("stream please", config=config))
    assert len(chunks) > 1
    (record,) = ledger.records()
    assert record.streamed is True
    assert record.ttft_s is not None
    assert 0 <= record.ttft_s <= record.latency_s
    assert _recorded_charges(ledger) == _server_charges(fake_openrouter)
    assert record.prompt_tokens
    assert record.completion_tokens


def test_langchain_handler_records_a_failed_call_with_the_error_class(fake_openrouter, make_chat, ledger):
    handler = UsageCallbackHandler(ledger)
    model = make_chat(default_headers={"X-Fake-Fault": "429"}, max_retries=0)
    with pytest.raises(errors.RateLimitError):
        model.invoke("hi", config={"callbacks": [handler], "configurable": {"user_id": "u1"}})
    (record,) = ledger.records()
    assert (record.outcome, record.user, record.cost, record.framework) == ("RateLimitError", "u1", None, "langchain")
    assert len(handler._calls) == 0


def test_langchain_handler_works_for_a_model_this_library_did_not_build(ledger):
    handler = UsageCallbackHandler(ledger)
    model = GenericFakeChatModel(messages=iter([AIMessage("Hello!"), AIMessage("Hello again, streamed")]))
    assert model.invoke("Hi", config={"callbacks": [handler], "metadata": {"user_id": "u2"}}).content == "Hello!"
    with user_context("u3", session_id="chat-9"):
        list(model.stream("Hi", config={"callbacks": [handler]}))
    first, second = ledger.records()
    assert (first.user, first.cost, first.outcome, first.streamed) == ("u2", None, "ok", False)
    assert (second.user, second.session_id, second.cost, second.streamed) == ("u3", "chat-9", None, True)
    assert second.ttft_s is not None
    assert first.framework == second.framework == "langchain"


def test_langchain_handler_reads_configurable_of_a_third_party_model_inside_a_chain(ledger):
    handler = UsageCallbackHandler(ledger)
    model = GenericFakeChatModel(messages=iter([AIMessage("one"), AIMessage("two")]))
    chain = RunnableLambda(lambda text: f"Q: {text}") | model
    chain.invoke("hi", config={"callbacks": [handler], "configurable": {"user_id": "u8", "thread_id": "t1"}})
    (record,) = ledger.records()
    assert (record.user, record.session_id) == ("u8", "t1")


def test_langchain_handler_keeps_concurrent_runs_apart(fake_openrouter, make_chat, ledger):
    handler = UsageCallbackHandler(ledger)
    users = [f"u{i}" for i in range(8)]
    make_chat().batch(
        [f"question {i}" for i in range(8)],
        config=[{"callbacks": [handler], "configurable": {"user_id": user}, "max_concurrency": 4} for user in users],
    )
    fake = GenericFakeChatModel(messages=iter([AIMessage(f"a{i}") for i in range(8)]))
    fake.batch(["q"] * 8, config=[{"callbacks": [handler], "metadata": {"user_id": f"f{user}"}} for user in users])
    records = list(ledger.records())
    assert sorted(r.user or "" for r in records) == sorted(users + [f"f{user}" for user in users])
    ours = {r.generation_id: (r.user, r.cost) for r in records if r.generation_id}
    assert ours == _server_charges(fake_openrouter)
    assert len(handler._calls) == 0


def test_langchain_handler_keeps_the_user_the_model_actually_sent(fake_openrouter, make_chat, ledger):
    # The model pseudonymises the id; the handler records the pseudonym that went out, not the raw id.
    policy = UserIdPolicy(prefix="app_", hash_key=HASH_KEY, hash_all=True)
    handler = UsageCallbackHandler(ledger)
    make_chat(user_policy=policy).invoke("hi", config={"callbacks": [handler], "configurable": {"user_id": "42"}})
    (record,) = ledger.records()
    sent = fake_openrouter.chat_requests[-1].body["user"]
    assert sent != "42"
    assert record.user == sent == policy.apply("42")


def test_langchain_handler_policy_covers_users_it_resolves_itself(make_chat, ledger):
    # A failed call has no response to read the sent id from: the handler's own policy gives the same value.
    policy = UserIdPolicy(prefix="app_", hash_key=HASH_KEY, hash_all=True)
    handler = UsageCallbackHandler(ledger, policy=policy)
    model = make_chat(user_policy=policy, default_headers={"X-Fake-Fault": "429"})
    with pytest.raises(errors.RateLimitError):
        model.invoke("hi", config={"callbacks": [handler], "configurable": {"user_id": "42"}})
    (record,) = ledger.records()
    assert record.user == policy.apply("42")


# -- LlamaIndex -----------------------------------------------------------------------------------


def test_llama_index_handler_records_each_call_as_the_server_charged_it(fake_openrouter, ledger, li_handler):
    llm = make_llm(fake_openrouter)
    with instrument_tags({"user_id": "u3", "session_id": "s3"}):
        llm.chat(MESSAGES)
        llm.complete("Say hello")
        responses = list(llm.stream_chat(MESSAGES))
    with user_context("u4"):
        asyncio.run(llm.achat(MESSAGES))
    assert len(responses) > 1
    assert len(fake_openrouter.generations) == 4
    assert _recorded_charges(ledger) == _server_charges(fake_openrouter)
    records = list(ledger.records())
    assert sorted(r.user or "" for r in records) == ["u3", "u3", "u3", "u4"]
    assert all(r.framework == "llama_index" and r.outcome == "ok" for r in records)
    assert all(r.model_requested == "openai/gpt-4o-mini" and r.model_used and r.provider for r in records)
    assert all(r.prompt_tokens and r.completion_tokens for r in records)
    (streamed,) = (r for r in records if r.streamed)
    assert streamed.ttft_s is not None
    assert streamed.session_id == "s3"
    assert len(li_handler._calls) == 0


def test_llama_index_handler_keeps_concurrent_calls_apart(fake_openrouter, ledger, li_handler):
    llm = make_llm(fake_openrouter)

    def call(i: int) -> None:
        with instrument_tags({"user_id": f"u{i}"}):
            if i % 2:
                list(llm.stream_chat(MESSAGES))
            else:
                llm.chat(MESSAGES)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(call, range(8)))
    assert len(fake_openrouter.generations) == 8
    assert _recorded_charges(ledger) == _server_charges(fake_openrouter)
    assert sum(r.streamed for r in ledger.records()) == 4


def test_llama_index_handler_records_failures_and_abandoned_streams(fake_openrouter, ledger, li_handler):
    with instrument_tags({"user_id": "u5"}), pytest.raises(errors.RateLimitError):
        make_llm(fake_openrouter, default_headers={"X-Fake-Fault": "429"}).chat(MESSAGES)
    stream = make_llm(fake_openrouter).stream_chat(MESSAGES, user="u6")
    next(stream)
    stream.close()  # the consumer stops reading before the end
    outcomes = {r.user: (r.outcome, r.cost) for r in ledger.records()}
    assert outcomes == {"u5": ("RateLimitError", None), "u6": ("abandoned", None)}
    assert len(li_handler._calls) == 0


def test_llama_index_handler_records_one_call_for_an_llm_built_on_complete(ledger, li_handler):
    # MockLLM is a CustomLLM: its chat() calls its own complete(), which emits a second, nested call.
    with instrument_tags({"user_id": "u7"}):
        MockLLM().chat(MESSAGES)
        MockLLM().complete("hello")
    records = list(ledger.records())
    assert [(r.user, r.outcome, r.cost) for r in records] == [("u7", "ok", None), ("u7", "ok", None)]


# -- handlers never break the call -----------------------------------------------------------------


class _BrokenLedger:
    def __init__(self) -> None:
        self.calls = 0

    def record(self, rec: Any) -> None:
        self.calls += 1
        raise RuntimeError("disk on fire")


def test_a_failing_ledger_never_reaches_the_caller(fake_openrouter, make_chat, caplog):
    caplog.set_level(logging.DEBUG, logger="openrouter_attribution.usage")
    broken = _BrokenLedger()
    lc_handler = UsageCallbackHandler(broken)
    answer = make_chat().invoke("hi", config={"callbacks": [lc_handler], "configurable": {"user_id": "u1"}})
    assert answer.content
    # Direct calls too: LangChain would swallow a handler error itself, the handler must not rely on that.
    run_id = uuid4()
    lc_handler.on_chat_model_start({}, [], run_id=run_id, metadata={"user_id": "u1"})
    lc_handler.on_llm_error(RuntimeError("boom"), run_id=run_id)
    lc_handler.on_llm_end(None, run_id=uuid4())  # type: ignore[arg-type]  # nonsense input, still no raise

    li_handler = UsageEventHandler(broken)
    get_dispatcher().add_event_handler(li_handler)
    try:
        assert make_llm(fake_openrouter).chat(MESSAGES).message.content
    finally:
        get_dispatcher().event_handlers.remove(li_handler)
    start = LLMChatStartEvent(messages=[ChatMessage(content="x")], additional_kwargs={}, model_dict={}, span_id="s1")
    li_handler.handle(start)
    li_handler.handle(object())  # type: ignore[arg-type]
    assert broken.calls == 3
    assert "usage handler" in caplog.text


@pytest.mark.parametrize("module", ["langchain.usage", "llama_index.usage"])
def test_docstring_examples_run(fake_openrouter, module):
    results = doctest.testmod(importlib.import_module(f"openrouter_attribution.{module}"))
    assert results.failed == 0
    assert results.attempted > 0


# -- `ledger=` and a handler on the same call: one record ----------------------------------------


def _lc_calls(server: Any, ledger: UsageLedger, handler: Any) -> int:
    def model(**kwargs: Any) -> Any:
        return ChatOpenRouter(model="openai/gpt-4o-mini", base_url=server.base_url, api_key=server.api_key,
                              max_retries=0, ledger=ledger, callbacks=[handler], **kwargs)  # fmt: skip

    chat = model()
    chat.invoke("hi", user="u1")
    list(chat.stream("hi", user="u2"))
    asyncio.run(chat.ainvoke("hi", user="u3"))

    async def astream() -> None:
        async for _ in chat.astream("hi", user="u4"):
            pass

    asyncio.run(astream())
    with pytest.raises(errors.RateLimitError):
        model(default_headers={"X-Fake-Fault": "429"}).invoke("hi", user="u5")
    with pytest.raises(errors.APIError):
        list(model(default_headers={"X-Fake-Fault": "mid-stream-error"}).stream("hi", user="u6"))
    stream = chat.stream("a long answer please", user="u7")
    next(stream)
    stream.close()
    return 7


def _li_calls(server: Any, ledger: UsageLedger, handler: Any) -> int:
    llm = make_llm(server, ledger=ledger)
    llm.chat(MESSAGES, user="u1")
    list(llm.stream_chat(MESSAGES, user="u2"))
    asyncio.run(llm.achat(MESSAGES, user="u3"))

    async def astream() -> None:
        async for _ in await llm.astream_chat(MESSAGES, user="u4"):
            pass

    asyncio.run(astream())
    with pytest.raises(errors.RateLimitError):
        make_llm(server, ledger=ledger, default_headers={"X-Fake-Fault": "429"}).chat(MESSAGES, user="u5")
    with pytest.raises(errors.APIError):
        list(make_llm(server, ledger=ledger, default_headers={"X-Fake-Fault": "mid-stream-error"})
             .stream_chat(MESSAGES, user="u6"))  # fmt: skip
    stream = llm.stream_chat(MESSAGES, user="u7")
    next(stream)
    stream.close()
    return 7


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_ledger_and_handler_on_the_same_calls_keep_one_record_each(fake_openrouter, tmp_path, framework):
    import gc

    ledger = UsageLedger(tmp_path / "usage.db")
    if framework == "langchain":
        calls = _lc_calls(fake_openrouter, ledger, UsageCallbackHandler(ledger))
    else:
        handler = attach_usage_handler(ledger)
        try:
            calls = _li_calls(fake_openrouter, ledger, handler)
        finally:
            get_dispatcher().event_handlers.remove(handler)
    gc.collect()  # a closed stream's generators finish recording when collected
    ledger.flush()
    records = list(ledger.records())
    outcomes = sorted((r.user, r.outcome) for r in records if r.user)
    assert len(records) == calls, outcomes
    assert outcomes[:4] == [("u1", "ok"), ("u2", "ok"), ("u3", "ok"), ("u4", "ok")]
    assert ("u5", "RateLimitError") in outcomes
    assert {r.outcome for r in records} >= {"ok", "RateLimitError", "ProviderUnavailableError", "abandoned"}
    ok = [r for r in records if r.outcome == "ok"]
    assert all(r.record_id == r.generation_id for r in ok)  # a generation is its record's identity
    assert {r.generation_id for r in records} - {None} <= set(fake_openrouter.generations)
    ledger.close()


def test_an_unknown_model_has_the_same_key_in_both_handlers(ledger, li_handler):
    handler = UsageCallbackHandler(ledger)
    GenericFakeChatModel(messages=iter([AIMessage("x")])).invoke("Hi", config={"callbacks": [handler]})
    MockLLM().complete("hello")
    keys = {(r.framework, r.model_requested, r.model_used) for r in ledger.records()}
    assert keys == {("langchain", None, None), ("llama_index", None, None)}
    assert [t.key for t in ledger.totals("model")] == [None]
