"""POST /rerank on the local server: OpenRouter's shapes, strict validation, deterministic scores, faults."""

from __future__ import annotations

import http.client
import json
from decimal import Decimal

import pytest
from openrouter.components import GenerationResponse
from openrouter.operations import CreateRerankResponseBody

from openrouter_attribution.testing import FakeOpenRouter
from tests.wire.test_fake_server_faults import STATUS_FAULTS

MODEL = "cohere/rerank-v3.5"
DOCUMENTS = ["Dogs bark at strangers.", "Cats purr when content.", "Cats and dogs sleep."]


def _post(server, body, headers=None, api_key=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/api/v1/rerank", json.dumps(body) if not isinstance(body, bytes) else body,
                 {"Authorization": f"Bearer {api_key or server.api_key}", **(headers or {})})  # fmt: skip
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def _rerank(server, headers=None, **fields):
    """Post a rerank request; the answer's JSON when it is a 200 JSON body, else its bytes."""
    response, data = _post(
        server, {"model": MODEL, "query": "why do cats purr", "documents": DOCUMENTS, **fields}, headers
    )
    if response.status == 200:
        try:
            return response, json.loads(data)
        except json.JSONDecodeError:
            pass
    return response, data


def test_answer_has_openrouters_shape_usage_with_cost_and_a_generation(fake_openrouter):
    response, body = _rerank(fake_openrouter, user="app_1", session_id="s-1", top_n=2)
    assert response.status == 200
    CreateRerankResponseBody.model_validate(body)
    assert [r["index"] for r in body["results"]] == [1, 2]  # the documents sharing the query's words, best first
    assert body["results"][0] == {"index": 1, "relevance_score": 0.5, "document": {"text": DOCUMENTS[1]}}
    assert (body["model"], body["provider"]) == (MODEL, "Cohere")
    usage = body["usage"]
    assert usage["search_units"] == 1
    assert Decimal(str(usage["cost"])) == Decimal("0.002")
    assert usage["total_tokens"] > 0
    assert response.getheader("X-Generation-Id") == body["id"]
    generation = fake_openrouter.generations[body["id"]]
    GenerationResponse.model_validate({"data": generation})
    assert (generation["external_user"], generation["session_id"], generation["api_type"]) == ("app_1", "s-1", "rerank")
    assert generation["total_cost"] == usage["cost"]
    assert generation["tokens_prompt"] == usage["total_tokens"]
    (recorded,) = fake_openrouter.rerank_requests
    assert recorded.body["user"] == "app_1"
    assert fake_openrouter.chat_requests == fake_openrouter.embeddings_requests == []


def test_scores_are_deterministic_and_every_document_is_ranked_without_top_n(fake_openrouter):
    first = _rerank(fake_openrouter)[1]["results"]
    assert first == _rerank(fake_openrouter)[1]["results"]
    assert [r["index"] for r in first] == [1, 2, 0]
    assert [r["relevance_score"] for r in first] == [0.5, 0.25, 0.0]


def test_a_token_priced_model_and_structured_documents(fake_openrouter):
    response, body = _rerank(fake_openrouter, model="voyage/rerank-2.5",
                             documents=[{"text": "cats purr"}, {"image": "https://example.com/a.png"}])  # fmt: skip
    assert response.status == 200
    assert [r["index"] for r in body["results"]] == [0, 1]
    assert Decimal(str(body["usage"]["cost"])) == Decimal("0.00000005") * body["usage"]["total_tokens"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"query": ""}, "query"),
        ({"query": 5}, "query"),
        ({"documents": []}, "at least one document"),
        ({"documents": ["ok", ""]}, "documents[1]"),
        ({"documents": [{}]}, "documents[0]"),
        ({"documents": ["x"] * 1001}, "at most 1000"),
        ({"documents": "not a list"}, "documents"),
        ({"top_n": 0}, "top_n"),
        ({"top_n": "2"}, "top_n"),
        ({"model": "openai/gpt-4o-mini"}, "not a valid rerank model ID"),
        ({"model": "openai/text-embedding-3-small"}, "not a valid rerank model ID"),
        ({"user": "u" * 257}, "at most 256 characters"),
        ({"session_id": "s" * 257}, "at most 256 characters"),
        ({"user": 42}, "user"),
        ({"trace": "not an object"}, "trace"),
    ],
)
def test_invalid_requests_are_refused_like_openrouter(fake_openrouter, change, message):
    response, data = _rerank(fake_openrouter, **change)
    assert response.status == 400
    error = json.loads(data)["error"]
    assert error["code"] == 400
    assert message in error["message"]
    assert fake_openrouter.generations == {}


def test_body_and_auth_are_required(fake_openrouter):
    assert _post(fake_openrouter, b"")[0].status == 400
    assert _post(fake_openrouter, {"model": MODEL, "query": "q"})[0].status == 400  # no documents
    response, data = _post(fake_openrouter, {"model": MODEL, "query": "q", "documents": ["d"]}, api_key="sk-or-x")
    assert response.status == 401


@pytest.mark.parametrize(("fault", "error", "message"), STATUS_FAULTS)
def test_status_faults_by_header(fake_openrouter, fault, error, message):
    response, data = _rerank(fake_openrouter, {"X-Fake-Fault": fault})
    assert response.status == int(fault)
    assert message in json.loads(data)["error"]["message"]


def test_fault_model_and_queue_apply_to_rerank(fake_openrouter):
    assert _rerank(fake_openrouter, model="fake/fault-503")[0].status == 503
    fake_openrouter.inject_fault("429", count=1, after=1)
    assert _rerank(fake_openrouter)[0].status == 200
    response, _ = _rerank(fake_openrouter)
    assert (response.status, response.getheader("Retry-After")) == (429, "1")


def test_in_body_error_and_malformed_body(fake_openrouter):
    response, body = _rerank(fake_openrouter, {"X-Fake-Fault": "mid-stream-error"})
    assert response.status == 200
    assert body["error"]["code"] == 502
    response, data = _rerank(fake_openrouter, {"X-Fake-Fault": "malformed-chunk"})
    assert response.status == 200
    assert isinstance(data, bytes)  # not JSON
    with pytest.raises(json.JSONDecodeError):
        json.loads(data)


def test_latency_applies_to_rerank():
    with FakeOpenRouter(latency=0.2) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=0.1)
        conn.request("POST", "/api/v1/rerank", json.dumps({"model": MODEL, "query": "q", "documents": ["d"]}),
                     {"Authorization": f"Bearer {server.api_key}"})  # fmt: skip
        with pytest.raises(TimeoutError):
            conn.getresponse()
        conn.close()
