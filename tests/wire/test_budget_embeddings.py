"""Budgets on the embeddings classes of both frameworks: the same step as chat, one per request."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from openrouter_attribution import BudgetExceededError, UsageLedger, UserBudget, user_context
from openrouter_attribution.pricing import ceiling, clear, parse_prices
from openrouter_attribution.testing.catalog import embedding_models_payload
from tests.wire.embeddings_helpers import EMBEDDING_MODEL, make_lc_embeddings, make_li_embedding


@pytest.fixture
def ledger(tmp_path):
    with UsageLedger(tmp_path / "usage.db") as ledger:
        yield ledger


def embedding_requests(server):
    return [r for r in server.requests if r.path.endswith("/embeddings")]


@pytest.mark.parametrize("style", ["sync", "async"])
def test_langchain_embeddings_reserve_every_request_before_sending_any(fake_openrouter, ledger, style):
    embeddings = make_lc_embeddings(fake_openrouter, ledger=ledger, batch_size=2, budget=UserBudget(max_requests=3))

    def embed(texts):
        call = embeddings.aembed_documents(texts) if style == "async" else None
        return asyncio.run(call) if call is not None else embeddings.embed_documents(texts)

    with user_context("app_1"):
        assert len(embed(["a", "b", "c", "d"])) == 4  # two requests
        with pytest.raises(BudgetExceededError) as refused:
            embed(["e", "f", "g"])  # two more requests would make four: none is sent
        assert (refused.value.kind, refused.value.limit, refused.value.spent) == ("requests", 3, 2)
        assert len(embedding_requests(fake_openrouter)) == 2
        assert len(embed(["h"])) == 1  # the released reservation of the refused call no longer counts
    assert len(embedding_requests(fake_openrouter)) == 3
    usage = ledger.budget_status("app_1").usage
    assert (usage.requests, usage.in_flight) == (3, 0)
    assert {r.kind for r in ledger.records()} == {"embeddings"}


def test_llama_index_embedding_refused_when_over_budget(fake_openrouter, ledger):
    embed_model = make_li_embedding(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=1), user="app_2")
    embed_model.get_text_embedding("a cat")
    with pytest.raises(BudgetExceededError) as refused:
        asyncio.run(embed_model.aget_text_embedding("a kitten"))
    assert refused.value.user == "app_2"
    assert len(embedding_requests(fake_openrouter)) == 1


def test_an_embeddings_reserve_is_priced_from_the_embeddings_models(fake_openrouter, ledger):
    clear()
    embeddings = make_lc_embeddings(
        fake_openrouter, ledger=ledger, user="app_3", budget=UserBudget(max_cost=Decimal("0.000000001"))
    )
    with pytest.raises(BudgetExceededError) as refused:
        embeddings.embed_query("a rather long sentence about cats and their purring")
    body = {"model": EMBEDDING_MODEL, "input": ["a rather long sentence about cats and their purring"]}
    assert refused.value.requested == ceiling(parse_prices(embedding_models_payload()), body)
    assert [r.path for r in fake_openrouter.requests] == ["/api/v1/embeddings/models"]
