"""OpenRouterRerank (LlamaIndex) on the wire: user sources and their order, LlamaIndex spellings, serialization."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from openrouter_attribution import UserIdPolicy, errors, user_context
from openrouter_attribution.llama_index import OpenRouterRerank
from tests.wire.embeddings_helpers import DOCUMENTS, QUESTIONS, attributions
from tests.wire.rerank_helpers import RERANK_MODEL, make_li_rerank

NODES = [NodeWithScore(node=TextNode(text=text, id_=f"n-{n}"), score=0.2) for n, text in enumerate(DOCUMENTS)]


def _rank(reranker, asynchronous: bool = False, query: str = QUESTIONS[0]):
    if asynchronous:
        return asyncio.run(reranker.apostprocess_nodes(NODES, QueryBundle(query)))
    return reranker.postprocess_nodes(NODES, query_str=query)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_resolution_order_context_then_tags_then_default(fake_openrouter, asynchronous):
    reranker = make_li_rerank(fake_openrouter, user="app_default")
    with instrument_tags({"user_id": "app_tag", "session_id": "s_tag"}):
        with user_context("app_ctx"):
            _rank(reranker, asynchronous)
        _rank(reranker, asynchronous)
    _rank(reranker, asynchronous)
    assert attributions(fake_openrouter.rerank_requests) == [
        ("app_ctx", "s_tag"),
        ("app_tag", "s_tag"),
        ("app_default", None),
    ]


def test_custom_tag_names(fake_openrouter):
    reranker = make_li_rerank(fake_openrouter, user_id_tag="account", session_id_tag="conversation")
    with instrument_tags({"account": "app_9", "conversation": "c-1"}):
        _rank(reranker)
    assert attributions(fake_openrouter.rerank_requests) == [("app_9", "c-1")]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_nodes_are_scored_with_the_relevance_score_best_first(fake_openrouter, asynchronous):
    ranked = _rank(make_li_rerank(fake_openrouter, top_n=2, user="app_1"), asynchronous, QUESTIONS[2])
    assert [n.node.node_id for n in ranked][0] == "n-2"
    assert len(ranked) == 2
    assert 1 >= ranked[0].score >= ranked[1].score
    assert NODES[2].score == 0.2  # the caller's nodes are left as they were


def test_rerank_events_are_dispatched_under_the_tags(fake_openrouter):
    seen = []

    class Handler(BaseEventHandler):
        def handle(self, event, **kwargs):
            if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
                seen.append((type(event).__name__, event.tags.get("user_id")))

    handler = Handler()
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        with instrument_tags({"user_id": "app_ev"}):
            _rank(make_li_rerank(fake_openrouter, top_n=1))
    finally:
        root.event_handlers.remove(handler)
    assert seen == [("ReRankStartEvent", "app_ev"), ("ReRankEndEvent", "app_ev")]


def test_a_missing_query_is_refused_before_sending(fake_openrouter):
    with pytest.raises(errors.InvalidInputError, match="needs the query"):
        make_li_rerank(fake_openrouter, user="app_1").postprocess_nodes(NODES)
    assert fake_openrouter.requests == []


def test_llama_index_spellings(fake_openrouter):
    reranker = OpenRouterRerank(
        api_base=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0, user="app_1"
    )
    assert (reranker.model, reranker.api_base, reranker.top_n) == (RERANK_MODEL, fake_openrouter.base_url, 3)
    assert len(_rank(reranker)) == 3
    with pytest.raises(errors.ConfigurationError, match="either api_base or base_url"):
        OpenRouterRerank(api_base="http://a/api/v1", base_url="http://b/api/v1", api_key="k")


def test_secrets_stay_out_of_serialization(fake_openrouter):
    reranker = make_li_rerank(fake_openrouter, user_policy=UserIdPolicy(prefix="app_"))
    for text in (repr(reranker), reranker.to_json(), str(reranker.to_dict())):
        assert fake_openrouter.api_key not in text
    assert "api_key" not in reranker.to_dict()
    assert "user_policy" not in reranker.to_dict()


def test_to_dict_round_trip_takes_the_key_from_the_environment(fake_openrouter, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    reranker = make_li_rerank(fake_openrouter, model="voyage/rerank-2.5", top_n=1, user="app_rt")
    restored = OpenRouterRerank.from_dict(reranker.to_dict())
    assert (restored.model, restored.top_n) == ("voyage/rerank-2.5", 1)
    assert len(_rank(restored)) == 1
    assert attributions(fake_openrouter.rerank_requests) == [("app_rt", None)]
