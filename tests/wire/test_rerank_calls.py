"""Both rerankers on the wire: results, typed errors, faults, privacy, the ledger and budgets (sync and async)."""

from __future__ import annotations

import asyncio
import pickle
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from openrouter_attribution import BudgetExceededError, UsageLedger, UserBudget, UserIdPolicy, errors, user_context
from tests.wire.conftest import STATUS_FAULTS
from tests.wire.embeddings_helpers import DOCUMENTS, QUESTIONS, attributions, server_costs_by_user
from tests.wire.rerank_helpers import RERANK_MODEL, make_lc_rerank, make_li_rerank

FRAMEWORKS = {"langchain": make_lc_rerank, "llama_index": make_li_rerank}
STYLES = ["sync", "async"]


def rank(reranker: Any, query: str, texts: list[str], style: str = "sync") -> list[tuple[str, float]]:
    """Rerank ``texts`` through the framework's public entry point; ``(text, score)`` best first."""
    if hasattr(reranker, "compress_documents"):
        documents = [Document(text, metadata={"n": n}) for n, text in enumerate(texts)]
        call = reranker.acompress_documents if style == "async" else reranker.compress_documents
        out = asyncio.run(call(documents, query)) if style == "async" else call(documents, query)
        return [(d.page_content, d.metadata["relevance_score"]) for d in out]
    nodes = [NodeWithScore(node=TextNode(text=text), score=0.1) for text in texts]
    if style == "async":
        ranked = asyncio.run(reranker.apostprocess_nodes(nodes, QueryBundle(query)))
    else:
        ranked = reranker.postprocess_nodes(nodes, query_str=query)
    return [(n.node.get_content(), n.score) for n in ranked]


@pytest.fixture(params=FRAMEWORKS)
def make(request):
    return FRAMEWORKS[request.param]


@pytest.fixture
def ledger(tmp_path):
    with UsageLedger(tmp_path / "usage.db") as ledger:
        yield ledger


@pytest.mark.parametrize("style", STYLES)
def test_the_top_n_most_relevant_come_back_best_first(fake_openrouter, make, style):
    with user_context("app_1", session_id="s-1", trace={"trace_id": "t-1"}):
        ranked = rank(make(fake_openrouter, top_n=2), QUESTIONS[0], DOCUMENTS, style)
    assert ranked[0][0] == DOCUMENTS[0]
    assert len(ranked) == 2
    assert ranked[0][1] > ranked[1][1]
    (request,) = fake_openrouter.rerank_requests
    assert request.body == {"model": RERANK_MODEL, "top_n": 2, "user": "app_1", "session_id": "s-1",
                            "trace": {"trace_id": "t-1"}, "query": QUESTIONS[0], "documents": DOCUMENTS}  # fmt: skip


def test_top_n_none_ranks_every_document_and_provider_is_sent(fake_openrouter, make):
    reranker = make(fake_openrouter, top_n=None, provider={"allow_fallbacks": False}, user="app_1")
    assert len(rank(reranker, QUESTIONS[1], DOCUMENTS)) == 3
    body = fake_openrouter.rerank_requests[0].body
    assert "top_n" not in body
    assert body["provider"] == {"allow_fallbacks": False}


@pytest.mark.parametrize("style", STYLES)
def test_no_documents_sends_nothing(fake_openrouter, make, style):
    assert rank(make(fake_openrouter, require_user=True), "q", [], style) == []
    assert fake_openrouter.requests == []


def test_metadata_is_checked_but_not_sent(fake_openrouter, make):
    # /rerank takes no metadata, but the ledger keeps it: an e-mail address in it is refused as the chat
    # models refuse it, before anything is sent.
    with (
        user_context("app_md", metadata={"contact": "ada@example.com"}),
        pytest.raises(errors.UserIdError, match="contact"),
    ):
        rank(make(fake_openrouter), "q", ["d"])
    assert fake_openrouter.rerank_requests == []
    with user_context("app_md", metadata={"tenant": "acme"}):
        rank(make(fake_openrouter), "q", ["d"])
    (request,) = fake_openrouter.rerank_requests
    assert request.body["user"] == "app_md"
    assert b"acme" not in request.raw_body


def test_policy_pseudonymises_the_user(fake_openrouter, make):
    policy = UserIdPolicy(prefix="app_", hash_key="hash-key-for-tests-0123456789abcdef")
    with user_context("acct-42"):
        rank(make(fake_openrouter, user_policy=policy), "q", ["d"])
    (request,) = fake_openrouter.rerank_requests
    assert request.body["user"] == policy.apply("acct-42")
    assert b"acct-42" not in request.raw_body


# -- bad input and identities: a typed error and nothing sent ------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("query", "texts"), [("", ["d"]), ("   ", ["d"]), ("q", ["fine", ""])])
def test_bad_input_raises_before_sending(fake_openrouter, make, style, query, texts):
    with pytest.raises(errors.InvalidInputError):
        rank(make(fake_openrouter, user="app_1"), query, texts, style)
    assert fake_openrouter.requests == []


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("user", ["u" * 257, "ada@example.com", "contact ada@example.com please", "bad\nid"])
def test_a_refused_user_id_sends_nothing(fake_openrouter, make, style, user):
    with user_context(user), pytest.raises(errors.UserIdError) as info:
        rank(make(fake_openrouter), "q", ["d"], style)
    assert "ada@example.com" not in str(info.value)
    assert fake_openrouter.requests == []


@pytest.mark.parametrize("style", STYLES)
def test_require_user_refuses_unattributed_calls(fake_openrouter, make, style):
    with pytest.raises(errors.MissingUserError):
        rank(make(fake_openrouter, require_user=True), "q", ["d"], style)
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_n": 0}, "top_n must be a whole number >= 1"),
        ({"top_n": -2}, "top_n must be a whole number >= 1"),
        ({"topn": 3}, "topn"),  # a misspelled option is refused, not dropped
        ({"api_key": None}, "No OpenRouter API key"),
        ({"user": "ada@example.com"}, "default attribution is refused"),
    ],
)
def test_bad_configuration_raises_at_construction(fake_openrouter, make, options, message):
    with pytest.raises(errors.ConfigurationError) as info:
        make(fake_openrouter, **options)
    assert message in str(info.value)
    assert fake_openrouter.requests == []


def test_secrets_stay_out_of_repr_dumps_and_pickles(fake_openrouter, make, monkeypatch):
    reranker = make(fake_openrouter, user="app_1")
    assert fake_openrouter.api_key not in repr(reranker)
    assert fake_openrouter.api_key not in str(reranker.model_dump())
    data = pickle.dumps(reranker)
    assert fake_openrouter.api_key.encode() not in data
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)  # unpickling reads the key again
    assert rank(pickle.loads(data), "q", ["d"])
    assert attributions(fake_openrouter.rerank_requests) == [("app_1", None)]


# -- errors: the same typed errors as chat ---------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "error_type"), STATUS_FAULTS)
@pytest.mark.parametrize("style", STYLES)
def test_status_faults_map_to_typed_errors(fake_openrouter, make, fault, error_type, style):
    reranker = make(fake_openrouter, user="app_1", default_headers={"X-Fake-Fault": fault})
    with pytest.raises(error_type) as info:
        rank(reranker, "q", ["d"], style)
    assert info.value.status_code == int(fault)
    if fault == "429":
        assert info.value.retry_after is not None


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ("mid-stream-error", errors.ProviderUnavailableError),
        ("error-body", errors.ProviderUnavailableError),
        ("malformed-chunk", errors.InvalidResponseError),
        ("truncated-stream", errors.InvalidResponseError),
        ("empty-body", errors.InvalidResponseError),
        ("drop-connection", errors.APIConnectionError),
    ],
)
@pytest.mark.parametrize("style", STYLES)
def test_other_faults(fake_openrouter, make, fault, error_type, style):
    with pytest.raises(error_type):
        rank(make(fake_openrouter, user="app_1", default_headers={"X-Fake-Fault": fault}), "q", ["d"], style)


def test_timeout(fake_openrouter, make):
    reranker = make(fake_openrouter, user="app_1", timeout=0.3, default_headers={"X-Fake-Fault": "slow-first-byte"})
    with pytest.raises(errors.APITimeoutError):
        rank(reranker, "q", ["d"])


def test_the_sdk_retries_a_429_once(fake_openrouter, make):
    fake_openrouter.inject_fault("429", retry_after=0)
    assert rank(make(fake_openrouter, user="app_1", max_retries=1), "q", ["d"])
    assert len(fake_openrouter.rerank_requests) == 2


# -- the ledger and budgets ----------------------------------------------------------------------------------


def test_one_record_per_request_with_tokens_and_cost(fake_openrouter, make, ledger):
    reranker = make(fake_openrouter, ledger=ledger)
    with user_context("app_1", session_id="s-1"):
        rank(reranker, QUESTIONS[0], DOCUMENTS)
        rank(reranker, QUESTIONS[1], DOCUMENTS, "async")
    with user_context("app_2"):
        rank(reranker, QUESTIONS[2], DOCUMENTS)
    with user_context("app_2"), pytest.raises(errors.RateLimitError):
        rank(make(fake_openrouter, ledger=ledger, default_headers={"X-Fake-Fault": "429"}), "q", ["d"])
    records = list(ledger.records())
    ok = [r for r in records if r.outcome == "ok"]
    assert len(ok) == 3
    assert {r.generation_id for r in ok} == set(fake_openrouter.generations)
    charged = server_costs_by_user(fake_openrouter)
    totals = {row.key: (row.requests, row.cost) for row in ledger.totals(by="user")}
    assert totals == {"app_1": (2, charged["app_1"]), "app_2": (2, charged["app_2"])}
    assert charged["app_1"] == Decimal("0.004")  # one Cohere search unit per request
    tokens = {g["id"]: g["tokens_prompt"] for g in fake_openrouter.generations.values()}
    assert all(r.prompt_tokens == tokens[r.generation_id] > 0 for r in ok)
    assert {r.kind for r in records} == {"rerank"}
    assert {(r.model_requested, r.model_used, r.provider) for r in ok} == {(RERANK_MODEL, RERANK_MODEL, "Cohere")}
    failed = [r for r in records if r.outcome != "ok"]
    assert [(f.outcome, f.cost, f.user) for f in failed] == [("RateLimitError", None, "app_2")]


@pytest.mark.parametrize("style", STYLES)
def test_a_budget_refuses_before_sending(fake_openrouter, make, ledger, style):
    reranker = make(fake_openrouter, ledger=ledger, budget=UserBudget(max_requests=1))
    with user_context("app_b"):
        rank(reranker, "q", ["d"], style)
        with pytest.raises(BudgetExceededError) as refused:
            rank(reranker, "q", ["d"], style)
    assert (refused.value.user, refused.value.kind, refused.value.limit) == ("app_b", "requests", 1)
    assert len(fake_openrouter.rerank_requests) == 1
    usage = ledger.budget_status("app_b").usage
    assert (usage.requests, usage.in_flight) == (1, 0)


def test_a_cost_budget_holds_its_fallback_reserve_for_a_rerank_model(fake_openrouter, make, ledger):
    # Rerank models are not in the chat price list: the budget's fallback reserve is held for them.
    budget = UserBudget(max_cost=Decimal("0.01"), fallback_reserve=Decimal("0.02"))
    with user_context("app_c"), pytest.raises(BudgetExceededError):
        rank(make(fake_openrouter, ledger=ledger, budget=budget), "q", ["d"])
    assert fake_openrouter.rerank_requests == []
