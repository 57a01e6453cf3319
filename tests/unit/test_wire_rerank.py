"""Rerank request bodies, input checks and answer parsing, without a network."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrouter_attribution import errors
from openrouter_attribution.attribution import Attribution
from openrouter_attribution.wire.rerank import build_rerank_body, check_top_n, parse_rerank

PARAMS = {"model": "cohere/rerank-v3.5", "top_n": 2}


def _answer(*results, **extra):
    return {"id": "gen-r1", "model": "cohere/rerank-v3.5", "provider": "Cohere",
            "results": [{"index": i, "relevance_score": s, "document": {"text": "x"}} for i, s in results],
            "usage": {"total_tokens": 12, "search_units": 1, "cost": 0.002}, **extra}  # fmt: skip


# -- request bodies ------------------------------------------------------------------------------------


def test_body_carries_query_documents_params_and_attribution():
    attribution = Attribution("app_1", session_id="s-1", trace={"trace_id": "t"})
    body = build_rerank_body("why?", ["a", "b"], params=PARAMS, attribution=attribution)
    assert body == {**PARAMS, "user": "app_1", "session_id": "s-1", "trace": {"trace_id": "t"}, "query": "why?",
                    "documents": ["a", "b"]}  # fmt: skip


def test_metadata_is_never_a_rerank_field():
    body = build_rerank_body("q", ["a"], params=PARAMS, attribution=Attribution("app_1"))
    assert "metadata" not in body


def test_top_n_above_the_number_of_documents_asks_for_all_of_them():
    body = build_rerank_body("q", ["a", "b"], params={**PARAMS, "top_n": 5}, attribution=Attribution())
    assert body["top_n"] == 2
    body = build_rerank_body("q", ["a", "b"], params={"model": "m"}, attribution=Attribution())
    assert "top_n" not in body


def test_extra_body_is_sent_last():
    body = build_rerank_body("q", ["a"], params=PARAMS, attribution=Attribution(), extra_body={"top_n": 1})
    assert body["top_n"] == 1
    assert "user" not in body


@pytest.mark.parametrize(
    ("query", "documents", "message"),
    [
        ("", ["a"], "query is an empty string"),
        ("   ", ["a"], "query is an empty string"),
        (None, ["a"], "query is a NoneType"),
        ("q", [], "No documents to rerank"),
        ("q", "a string", "must be a list of strings"),
        ("q", ["fine", ""], "Document 1 to rerank is an empty string"),
        ("q", ["fine", 3], "Document 1 to rerank is a int"),
    ],
)
def test_bad_input_is_refused_with_what_to_change(query, documents, message):
    with pytest.raises(errors.InvalidInputError) as info:
        build_rerank_body(query, documents, params=PARAMS, attribution=Attribution())
    assert message in str(info.value)


def test_document_content_never_shows_in_the_error():
    with pytest.raises(errors.InvalidInputError) as info:
        build_rerank_body("q", ["secret text of ada@example.com", 7], params=PARAMS, attribution=Attribution())
    assert "ada@example.com" not in str(info.value)


@pytest.mark.parametrize("top_n", [0, -1, 1.5, True, "3"])
def test_top_n_below_one_or_not_an_integer_is_a_configuration_error(top_n):
    with pytest.raises(errors.ConfigurationError, match="top_n must be a whole number >= 1"):
        check_top_n(top_n)
    with pytest.raises(errors.ConfigurationError):
        build_rerank_body("q", ["a"], params={**PARAMS, "top_n": top_n}, attribution=Attribution())


@pytest.mark.parametrize("top_n", [None, 1, 1000])
def test_valid_top_n(top_n):
    check_top_n(top_n)


# -- answers --------------------------------------------------------------------------------------------


def test_answer_is_parsed_best_first_with_usage():
    result = parse_rerank(_answer((2, 0.9), (0, 0.5)), expected=3)
    assert result.ranked == [(2, 0.9), (0, 0.5)]
    assert (result.id, result.model, result.provider) == ("gen-r1", "cohere/rerank-v3.5", "Cohere")
    assert result.usage is not None
    assert result.usage.cost == Decimal("0.002")
    assert result.usage.prompt_tokens == result.usage.total_tokens == 12  # a reranker's tokens are all read


def test_results_out_of_order_are_sorted_by_score():
    assert parse_rerank(_answer((0, 0.1), (1, 0.7), (2, 0.7)), expected=3).ranked == [(1, 0.7), (2, 0.7), (0, 0.1)]


def test_an_answer_without_usage_has_unknown_cost():
    body = _answer((0, 1.0))
    del body["usage"]
    assert parse_rerank(body, expected=1).usage is None


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"model": "m"},
        {"results": "nope"},
        _answer((3, 0.5)),
        _answer((0, 0.5), (0, 0.4)),
        _answer((-1, 0.5)),
        {"results": [{"index": 0}]},
        {"results": [{"index": 0, "relevance_score": "high"}]},
        {"results": [{"index": True, "relevance_score": 0.1}]},
        {"results": [{"index": 0, "relevance_score": float("nan")}]},
    ],
)
def test_unknown_shapes_raise(body):
    with pytest.raises(errors.InvalidResponseError):
        parse_rerank(body, expected=2)


def test_error_object_in_a_200_body_maps_to_the_typed_error():
    with pytest.raises(errors.ProviderUnavailableError) as info:
        parse_rerank({"id": "gen-9", "error": {"code": 502, "message": "Provider disconnected"}}, expected=1)
    assert info.value.generation_id == "gen-9"


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=20))
def test_every_document_once_best_first(scores):
    results = [(index, score) for index, score in enumerate(scores)]
    ranked = parse_rerank(_answer(*reversed(results)), expected=len(scores)).ranked
    assert sorted(index for index, _ in ranked) == list(range(len(scores)))
    assert [score for _, score in ranked] == sorted(scores, reverse=True)
