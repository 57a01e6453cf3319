"""Budgets on the wire, both frameworks, every call style: refused calls send nothing, ended calls settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from openrouter_attribution import (
    BudgetExceededError,
    ConfigurationError,
    MissingUserError,
    RateLimitError,
    UsageLedger,
    UserBudget,
    UserIdPolicy,
)
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.llama_index import OpenRouter
from openrouter_attribution.pricing import ceiling, clear, parse_prices
from openrouter_attribution.testing.catalog import models_payload
from openrouter_attribution.usage import MemoryUsageStore, SQLiteUsageStore
from tests.third_party_store import DictBudgetStore

MODEL = "openai/gpt-4o-mini"
MESSAGES = [ChatMessage(role="user", content="Say hello")]


@pytest.fixture(params=["sqlite", "third-party"])
def ledger(request, tmp_path):
    """A durable SQLite ledger, and one on a store written only to the documented protocols."""
    with UsageLedger(tmp_path / "usage.db" if request.param == "sqlite" else DictBudgetStore()) as ledger:
        yield ledger


def langchain(server: Any, **kwargs: Any) -> ChatOpenRouter:
    return ChatOpenRouter(model=MODEL, base_url=server.base_url, api_key=server.api_key, max_retries=0, **kwargs)


def llama_index(server: Any, **kwargs: Any) -> OpenRouter:
    return OpenRouter(model=MODEL, api_base=server.base_url, api_key=server.api_key, max_retries=0, **kwargs)


async def _adrain(gen: Any) -> None:
    async for _ in gen:
        pass


async def _li_astream(llm: OpenRouter, **kw: Any) -> None:
    await _adrain(await llm.astream_chat(MESSAGES, **kw))


# (framework, style) -> (build(server, **options), call(model, **call keywords))
STYLES: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "langchain-invoke": (langchain, lambda m, **kw: m.invoke("Say hello", **kw)),
    "langchain-ainvoke": (langchain, lambda m, **kw: asyncio.run(m.ainvoke("Say hello", **kw))),
    "langchain-stream": (langchain, lambda m, **kw: list(m.stream("Say hello", **kw))),
    "langchain-astream": (langchain, lambda m, **kw: asyncio.run(_adrain(m.astream("Say hello", **kw)))),
    "llama-index-chat": (llama_index, lambda m, **kw: m.chat(MESSAGES, **kw)),
    "llama-index-achat": (llama_index, lambda m, **kw: asyncio.run(m.achat(MESSAGES, **kw))),
    "llama-index-stream_chat": (llama_index, lambda m, **kw: list(m.stream_chat(MESSAGES, **kw))),
    "llama-index-astream_chat": (llama_index, lambda m, **kw: asyncio.run(_li_astream(m, **kw))),
}


def reservations(ledger: UsageLedger) -> int:
    return ledger.budget_status("app_1").usage.in_flight


@pytest.mark.parametrize("style", list(STYLES))
def test_a_call_within_budget_goes_out_and_settles_the_next_is_refused_unsent(fake_openrouter, ledger, style):
    build, call = STYLES[style]
    model = build(
        fake_openrouter, ledger=ledger, budget=UserBudget(max_cost=Decimal("0.00002"), reserve=Decimal("0.00001"))
    )
    call(model, user="app_1")
    (rec,) = ledger.records(user="app_1")
    assert rec.cost is not None
    assert Decimal("0.00001") > rec.cost > 0
    assert reservations(ledger) == 0  # settled: the record counts now, not the reservation
    call(model, user="app_1")  # spent < 0.00001, + reserve 0.00001 <= 0.00002: still fits
    with pytest.raises(BudgetExceededError) as refused:
        call(model, user="app_1")
    assert len(fake_openrouter.chat_requests) == 2
    err = refused.value
    assert (err.user, err.kind, err.limit, err.reserved, err.requested) == (
        "app_1",
        "cost",
        Decimal("0.00002"),
        Decimal(0),
        Decimal("0.00001"),
    )
    assert err.spent == sum(r.cost for r in ledger.records(user="app_1"))
    assert len(list(ledger.records())) == 2  # a refused call writes no record
    assert reservations(ledger) == 0


@pytest.mark.parametrize("style", ["langchain-invoke", "llama-index-chat", "langchain-astream", "llama-index-achat"])
def test_max_requests_three_refuses_the_fourth_and_sends_nothing(fake_openrouter, ledger, style):
    build, call = STYLES[style]
    model = build(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=3))
    for _ in range(3):
        call(model, user="app_1")
    with pytest.raises(BudgetExceededError) as refused:
        call(model, user="app_1")
    assert (refused.value.kind, refused.value.limit, refused.value.spent) == ("requests", 3, 3)
    assert len(fake_openrouter.chat_requests) == 3
    assert len(fake_openrouter.requests) == 3  # a request limit needs no pricing: nothing else was asked either
    call(model, user="app_2")
    assert len(fake_openrouter.chat_requests) == 4


def test_a_window_that_has_passed_no_longer_counts(fake_openrouter, ledger):
    now = [time.time()]  # the budget's clock, moved by the test
    model = langchain(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=1, clock=lambda: now[0]))
    model.invoke("hi", user="app_1")
    with pytest.raises(BudgetExceededError) as refused:
        model.invoke("hi", user="app_1")
    now[0] = refused.value.resets_at.timestamp()  # midnight UTC: the next day's window
    model.invoke("hi", user="app_1")
    assert len(fake_openrouter.chat_requests) == 2


@pytest.mark.parametrize("framework", ["langchain", "llama-index"])
def test_an_abandoned_stream_settles(fake_openrouter, ledger, framework):
    if framework == "langchain":
        model = langchain(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=5))
        stream = model.stream("Tell me a long story", user="app_1")
    else:
        model = llama_index(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=5))
        stream = model.stream_chat([ChatMessage(role="user", content="Tell me a long story")], user="app_1")
    next(stream)
    assert reservations(ledger) == 1  # reserved when the stream started
    stream.close()
    assert reservations(ledger) == 0
    (rec,) = ledger.records(user="app_1")
    assert rec.outcome == "abandoned"
    assert ledger.budget_status("app_1").usage.requests == 1


@pytest.mark.parametrize("style", ["langchain-invoke", "llama-index-astream_chat"])
def test_a_failed_call_releases_its_reservation_and_counts_as_a_request(fake_openrouter, ledger, style):
    build, call = STYLES[style]
    model = build(
        fake_openrouter, ledger=ledger, budget=UserBudget(max_cost=Decimal("0.001"), reserve=Decimal("0.0009"))
    )
    fake_openrouter.inject_fault("429", retry_after=0)
    with pytest.raises(RateLimitError):
        call(model, user="app_1")
    usage = ledger.budget_status("app_1").usage
    assert (usage.in_flight, usage.reserved, usage.requests, usage.spent) == (0, Decimal(0), 1, Decimal(0))
    call(model, user="app_1")  # the budget is whole again: the failed call had no cost


def test_a_derived_reserve_is_the_calls_ceiling_from_the_model_pricing(fake_openrouter, ledger):
    clear()
    model = langchain(fake_openrouter, ledger=ledger, max_tokens=50, budget=UserBudget(max_cost=Decimal("0.00001")))
    with pytest.raises(BudgetExceededError) as refused:
        model.invoke("Say hello", user="app_1")
    expected = ceiling(
        parse_prices(models_payload()),
        {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Say hello"}]},
    )
    assert refused.value.requested == expected
    assert [r.path for r in fake_openrouter.requests] == ["/api/v1/models"]  # priced, but no chat request
    roomy = langchain(fake_openrouter, ledger=ledger, max_tokens=50, budget=UserBudget(max_cost=Decimal("0.001")))
    roomy.invoke("Say hello", user="app_1")
    asyncio.run(roomy.ainvoke("Say hello", user="app_1"))
    assert [r.path for r in fake_openrouter.requests].count("/api/v1/models") == 1  # the prices are cached
    assert len(fake_openrouter.chat_requests) == 2


def test_unattributed_calls_follow_the_setting(fake_openrouter, ledger):
    unattributed = {"ledger": ledger, "require_user": False}  # calls without a user, on purpose
    shared = langchain(fake_openrouter, **unattributed, budget=UserBudget(max_requests=1))
    shared.invoke("hi")
    with pytest.raises(BudgetExceededError) as refused:
        shared.invoke("hi")
    assert refused.value.user is None
    allowed = langchain(fake_openrouter, **unattributed, budget=UserBudget(max_requests=1, unattributed="allow"))
    allowed.invoke("hi")
    refusing = langchain(fake_openrouter, **unattributed, budget=UserBudget(max_requests=9, unattributed="refuse"))
    with pytest.raises(MissingUserError, match="refuses unattributed calls"):
        refusing.invoke("hi")
    required = langchain(fake_openrouter, ledger=ledger, require_user=True, budget=UserBudget(unattributed="allow"))
    with pytest.raises(MissingUserError):
        required.invoke("hi")
    assert len(fake_openrouter.chat_requests) == 2


def test_limits_are_keyed_by_the_id_as_sent(fake_openrouter, ledger):
    policy = UserIdPolicy(prefix="app_")
    budget = UserBudget(max_requests=1, limits={"app_42": UserBudget(max_requests=2)})
    model = llama_index(fake_openrouter, ledger=ledger, user_policy=policy, budget=budget)
    model.chat(MESSAGES, user="42")
    model.chat(MESSAGES, user="42")
    with pytest.raises(BudgetExceededError) as refused:
        model.chat(MESSAGES, user="42")
    assert (refused.value.user, refused.value.limit) == ("app_42", 2)  # the sent id, never the raw one
    assert "'42'" not in str(refused.value)
    assert [r.body["user"] for r in fake_openrouter.chat_requests] == ["app_42", "app_42"]


@pytest.mark.parametrize("build", [langchain, llama_index])
def test_a_budget_needs_a_ledger_that_can_hold_it(fake_openrouter, tmp_path, build):
    with pytest.raises(ConfigurationError, match="budget= needs ledger="):
        build(fake_openrouter, budget=UserBudget(max_requests=1))
    with pytest.raises(ConfigurationError, match="MemoryUsageStore cannot"):
        build(fake_openrouter, ledger=UsageLedger(MemoryUsageStore()), budget=UserBudget(max_requests=1))

    class CustomStore:  # a store of its own, without the budget methods
        def write_many(self, records: Any) -> None: ...
        def iter_records(self, *args: Any) -> Any:
            return iter(())

        def close(self) -> None: ...

    with pytest.raises(ConfigurationError, match="CustomStore cannot"):
        build(fake_openrouter, ledger=UsageLedger(CustomStore()), budget=UserBudget(max_requests=1))
    with pytest.raises(ConfigurationError, match="must be a UserBudget"):
        build(fake_openrouter, ledger=UsageLedger(SQLiteUsageStore(":memory:")), budget={"max_requests": 1})
    assert fake_openrouter.requests == []


def test_a_refused_call_leaves_no_record_through_the_usage_handler(fake_openrouter, ledger):
    from openrouter_attribution.langchain import UsageCallbackHandler

    model = langchain(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=1))
    handler = UsageCallbackHandler(ledger)
    model.invoke("hi", user="app_1", config={"callbacks": [handler]})
    with pytest.raises(BudgetExceededError):
        model.invoke("hi", user="app_1", config={"callbacks": [handler]})
    assert len(list(ledger.records())) == 1  # one record for the one call sent, none for the refused one
    assert len(fake_openrouter.chat_requests) == 1
    stream = langchain(fake_openrouter, ledger=ledger).stream("a long answer please", user="app_2")
    next(stream)
    stream.close()  # a stream cut short later in this context keeps a record id of its own
    assert sorted(r.outcome for r in ledger.records()) == ["abandoned", "ok"]


@pytest.mark.parametrize("module", ["usage.budgets.budget", "usage.reconcile"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    found = importlib.import_module(f"openrouter_attribution.{module}")
    results = doctest.testmod(found, extraglobs={"Decimal": Decimal})
    assert results.attempted > 0
    assert results.failed == 0


def test_a_budget_fails_closed_when_its_store_cannot_be_reached(fake_openrouter, tmp_path):
    import sqlite3

    from openrouter_attribution.usage import UsageStoreError

    path = tmp_path / "usage.db"
    with UsageLedger(SQLiteUsageStore(path, busy_timeout=0.2)) as ledger:
        model = langchain(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=5))
        model.invoke("hi", user="app_1")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock longer than busy_timeout
        try:
            with pytest.raises(UsageStoreError, match="cannot reserve budget"):
                model.invoke("hi", user="app_1")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert len(fake_openrouter.chat_requests) == 1  # the call whose budget could not be checked was not sent
        model.invoke("hi", user="app_1")
        assert len(fake_openrouter.chat_requests) == 2
