"""OpenRouterEmbedding (LlamaIndex) on the wire: every call style x every user source, batches, errors, ledger."""

from __future__ import annotations

import asyncio
import doctest
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.instrumentation.dispatcher import instrument_tags

from openrouter_attribution import UsageLedger, UserIdPolicy, errors, user_context
from openrouter_attribution.llama_index import OpenRouterEmbedding
from tests.wire.conftest import STATUS_FAULTS
from tests.wire.embeddings_helpers import attributions, make_li_embedding, server_costs_by_user

TEXTS = ["alpha beta", "gamma delta", "epsilon zeta"]

# Every public embedding entry point of BaseEmbedding that reaches the network.
CALL_STYLES: dict[str, Callable[[Any], Any]] = {
    "get_query_embedding": lambda m: m.get_query_embedding(TEXTS[0]),
    "aget_query_embedding": lambda m: asyncio.run(m.aget_query_embedding(TEXTS[0])),
    "get_text_embedding": lambda m: m.get_text_embedding(TEXTS[0]),
    "aget_text_embedding": lambda m: asyncio.run(m.aget_text_embedding(TEXTS[0])),
    "get_text_embedding_batch": lambda m: m.get_text_embedding_batch(TEXTS),
    "aget_text_embedding_batch": lambda m: asyncio.run(m.aget_text_embedding_batch(TEXTS)),
    "get_agg_embedding_from_queries": lambda m: m.get_agg_embedding_from_queries(TEXTS[:2]),
    "aget_agg_embedding_from_queries": lambda m: asyncio.run(m.aget_agg_embedding_from_queries(TEXTS[:2])),
}


@pytest.mark.parametrize("style", CALL_STYLES)
def test_user_context(fake_openrouter, style):
    with user_context("app_ctx", session_id="s_ctx"):
        assert CALL_STYLES[style](make_li_embedding(fake_openrouter))
    requests = fake_openrouter.embeddings_requests
    assert requests
    assert attributions(requests) == [("app_ctx", "s_ctx")] * len(requests)


@pytest.mark.parametrize("style", CALL_STYLES)
def test_instrument_tags(fake_openrouter, style):
    with instrument_tags({"user_id": "app_tag", "session_id": "s_tag"}):
        CALL_STYLES[style](make_li_embedding(fake_openrouter))
    requests = fake_openrouter.embeddings_requests
    assert requests
    assert attributions(requests) == [("app_tag", "s_tag")] * len(requests)


@pytest.mark.parametrize("style", CALL_STYLES)
def test_model_default(fake_openrouter, style):
    CALL_STYLES[style](make_li_embedding(fake_openrouter, user="app_default", session_id="s_default"))
    requests = fake_openrouter.embeddings_requests
    assert attributions(requests) == [("app_default", "s_default")] * len(requests)


def test_resolution_order_context_then_tags_then_default(fake_openrouter):
    model = make_li_embedding(fake_openrouter, user="app_default")
    with instrument_tags({"user_id": "app_tag", "session_id": "s_tag"}):
        with user_context("app_ctx"):
            model.get_query_embedding("one")
        model.get_query_embedding("two")
    model.get_query_embedding("three")
    assert attributions(fake_openrouter.embeddings_requests) == [
        ("app_ctx", "s_tag"),
        ("app_tag", "s_tag"),
        ("app_default", None),
    ]


def test_custom_tag_names(fake_openrouter):
    model = make_li_embedding(fake_openrouter, user_id_tag="account", session_id_tag="conversation")
    with instrument_tags({"account": "app_9", "conversation": "c-1"}):
        model.get_text_embedding("hello")
    assert attributions(fake_openrouter.embeddings_requests) == [("app_9", "c-1")]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_batches_follow_embed_batch_size_with_concurrent_async_workers(fake_openrouter, asynchronous):
    texts = [f"text number {i}" for i in range(7)]
    model = make_li_embedding(fake_openrouter, embed_batch_size=3, num_workers=3, dimensions=32)
    with user_context("app_b"):
        vectors = asyncio.run(model.aget_text_embedding_batch(texts)) if asynchronous else (
            model.get_text_embedding_batch(texts))  # fmt: skip
    requests = fake_openrouter.embeddings_requests
    assert sorted(r.body["input"] for r in requests) == sorted([texts[0:3], texts[3:6], texts[6:7]])
    assert {r.body["user"] for r in requests} == {"app_b"}
    assert {len(v) for v in vectors} == {32}
    assert vectors[5] == model.get_text_embedding(texts[5])


def test_llama_index_spellings(fake_openrouter):
    model = OpenRouterEmbedding(model_name="openai/text-embedding-3-large", api_base=fake_openrouter.base_url,
                                api_key=fake_openrouter.api_key, max_retries=0, user="app_1")  # fmt: skip
    assert (model.model, model.model_name, model.api_base) == ("openai/text-embedding-3-large",) * 2 + (
        fake_openrouter.base_url,
    )
    assert len(model.get_query_embedding("x")) == 3072
    with pytest.raises(errors.ConfigurationError, match="either api_base or base_url"):
        OpenRouterEmbedding(api_base="http://a/api/v1", base_url="http://b/api/v1", api_key="k")


def test_policy_pseudonymises_the_user(fake_openrouter):
    policy = UserIdPolicy(prefix="app_", hash_key="hash-key-for-tests-0123456789abcdef")
    with instrument_tags({"user_id": "acct-42"}):
        make_li_embedding(fake_openrouter, user_policy=policy).get_query_embedding("x")
    (request,) = fake_openrouter.embeddings_requests
    assert request.body["user"] == policy.apply("acct-42")


def test_secrets_stay_out_of_serialization(fake_openrouter):
    model = make_li_embedding(fake_openrouter, user_policy=UserIdPolicy(prefix="app_"))
    for text in (repr(model), model.to_json(), str(model.to_dict()), str(model.to_payload())):
        assert fake_openrouter.api_key not in text
    assert "api_key" not in model.to_dict()
    assert "user_policy" not in model.to_dict()


def test_to_dict_round_trip_takes_the_key_from_the_environment(fake_openrouter, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    model = make_li_embedding(fake_openrouter, model="openai/text-embedding-3-large", dimensions=64, user="app_rt")
    restored = OpenRouterEmbedding.from_dict(model.to_dict())
    assert restored.model == restored.model_name == "openai/text-embedding-3-large"
    assert restored.dimensions == 64
    assert len(restored.get_query_embedding("x")) == 64
    assert attributions(fake_openrouter.embeddings_requests) == [("app_rt", None)]


# -- bad input: a typed error and nothing sent ----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.get_text_embedding(""),
        lambda m: m.get_query_embedding(""),
        lambda m: m.get_text_embedding_batch(["fine", ""]),
        lambda m: asyncio.run(m.aget_text_embedding_batch(["fine", None])),
    ],
)
def test_bad_input_raises_before_sending(fake_openrouter, call):
    with pytest.raises(errors.InvalidInputError):
        call(make_li_embedding(fake_openrouter))
    assert fake_openrouter.requests == []


def test_require_user(fake_openrouter):
    model = make_li_embedding(fake_openrouter, require_user=True)
    with pytest.raises(errors.MissingUserError) as info:
        model.get_text_embedding_batch(TEXTS)
    assert "instrument_tags({'user_id': ...})" in str(info.value)
    assert fake_openrouter.requests == []
    assert model.get_text_embedding_batch([]) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"embed_batch_size": 0}, "embed_batch_size must be"),
        ({"embed_batch_size": 4096}, "embed_batch_size must be"),
        ({"dimensions": -3}, "positive integer"),
        ({"model": "openai/text-embedding-ada-002", "dimensions": 8}, "fixed size"),
        ({"encoding_format": "uint8"}, "'float' or 'base64'"),
        ({"batch_size": 8}, "has no option 'batch_size' (did you mean 'embed_batch_size'?)"),
    ],
)
def test_bad_configuration_raises_at_construction(fake_openrouter, options, message):
    with pytest.raises(errors.ConfigurationError) as info:
        make_li_embedding(fake_openrouter, **options)
    assert message in str(info.value)
    assert fake_openrouter.requests == []  # not even GET /embeddings/models


# -- errors and the ledger ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "error_type"), STATUS_FAULTS)
@pytest.mark.parametrize("asynchronous", [False, True])
def test_status_faults_map_to_typed_errors(fake_openrouter, fault, error_type, asynchronous):
    model = make_li_embedding(fake_openrouter, default_headers={"X-Fake-Fault": fault})
    with pytest.raises(error_type) as info:
        asyncio.run(model.aget_query_embedding("hi")) if asynchronous else model.get_query_embedding("hi")
    assert info.value.status_code == int(fault)


def test_malformed_answer_and_dropped_connection(fake_openrouter):
    with pytest.raises(errors.InvalidResponseError):
        make_li_embedding(fake_openrouter, default_headers={"X-Fake-Fault": "malformed-chunk"}).get_text_embedding("x")
    with pytest.raises(errors.APIConnectionError):
        make_li_embedding(fake_openrouter, default_headers={"X-Fake-Fault": "drop-connection"}).get_text_embedding("x")


def test_one_record_per_request_with_tokens_and_cost(fake_openrouter, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    model = make_li_embedding(fake_openrouter, ledger=ledger, embed_batch_size=2)
    with instrument_tags({"user_id": "app_1"}):
        model.get_text_embedding_batch([f"document {i}" for i in range(5)])
    with user_context("app_2"):
        asyncio.run(model.aget_query_embedding("question"))
    records = list(ledger.records())
    assert len(records) == 4
    assert {r.generation_id for r in records} == set(fake_openrouter.generations)
    totals = {row.key: (row.requests, row.cost) for row in ledger.totals(by="user")}
    charged = server_costs_by_user(fake_openrouter)
    assert totals == {"app_1": (3, charged["app_1"]), "app_2": (1, charged["app_2"])}
    assert all(r.framework == "llama_index" and r.outcome == "ok" and r.prompt_tokens for r in records)
    assert {r.kind for r in records} == {"embeddings"}
    ledger.close()


def test_docstring_example_runs():
    from openrouter_attribution.llama_index import embeddings

    results = doctest.testmod(embeddings)
    assert results.failed == 0
    assert results.attempted > 0
