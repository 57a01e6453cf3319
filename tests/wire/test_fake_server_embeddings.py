"""POST /embeddings on the local server: OpenRouter's shapes, strict validation, deterministic vectors, faults."""

from __future__ import annotations

import http.client
import json
import math
from decimal import Decimal

import openai
import pytest
from openrouter.components import GenerationResponse, ModelsListResponse
from openrouter.operations import CreateEmbeddingsResponseBody

from openrouter_attribution.testing import FakeOpenRouter
from openrouter_attribution.testing.catalog import EMBEDDING_CATALOG
from tests.wire.test_fake_server_faults import STATUS_FAULTS

MODEL = "openai/text-embedding-3-small"


def _post(server, body, headers=None, path="/api/v1/embeddings", api_key=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", path, json.dumps(body) if not isinstance(body, bytes) else body,
                 {"Authorization": f"Bearer {api_key or server.api_key}", **(headers or {})})  # fmt: skip
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def _cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_answer_has_openrouters_shape_usage_with_cost_and_a_generation(fake_openrouter):
    response, data = _post(fake_openrouter, {"model": MODEL, "input": ["a cat", "a dog"], "user": "app_1",
                                             "session_id": "s-1", "encoding_format": "float"})  # fmt: skip
    assert response.status == 200
    body = json.loads(data)
    CreateEmbeddingsResponseBody.model_validate(body)
    assert (body["object"], body["model"], [d["index"] for d in body["data"]]) == ("list", MODEL, [0, 1])
    assert [len(d["embedding"]) for d in body["data"]] == [1536, 1536]
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] == 4  # one token per four characters, per input
    assert Decimal(str(usage["cost"])) == Decimal("0.00000002") * 4
    assert response.getheader("X-Generation-Id") == body["id"]
    generation = fake_openrouter.generations[body["id"]]
    GenerationResponse.model_validate({"data": generation})
    assert (generation["external_user"], generation["session_id"]) == ("app_1", "s-1")
    assert generation["api_type"] == "embeddings"
    assert generation["total_cost"] == usage["cost"]
    assert generation["tokens_completion"] == 0
    (recorded,) = fake_openrouter.embeddings_requests
    assert recorded.body["user"] == "app_1"
    assert fake_openrouter.chat_requests == []


def test_generation_lookup_works_for_embeddings(fake_openrouter, client):
    reply = client.embeddings.create(model=MODEL, input="hello", user="app_2")
    response = client.get(f"/generation?id={reply.model_extra['id']}", cast_to=object)
    assert response["data"]["external_user"] == "app_2"


def test_vectors_are_deterministic_unit_and_closer_for_shared_words(client):
    texts = ["the cat sat on the mat", "a cat on a mat", "quarterly interest rates rose"]
    first = [d.embedding for d in client.embeddings.create(model=MODEL, input=texts, encoding_format="float").data]
    again = [d.embedding for d in client.embeddings.create(model=MODEL, input=texts, encoding_format="float").data]
    assert first == again
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5) for v in first)
    assert _cosine(first[0], first[1]) > 0.3 > 0.1 > abs(_cosine(first[0], first[2]))
    other_model = client.embeddings.create(model="openai/text-embedding-3-large", input=texts[0], dimensions=1536)
    assert other_model.data[0].embedding != first[0]


def test_base64_and_float_carry_the_same_float32_vector(client):
    as_float = client.embeddings.create(model=MODEL, input="same text", encoding_format="float").data[0].embedding
    # The SDK asks for base64 when no format is given and decodes it itself.
    as_base64 = client.embeddings.create(model=MODEL, input="same text").data[0].embedding
    assert max(abs(a - b) for a, b in zip(as_float, as_base64, strict=True)) < 1e-8
    raw = client.post("/embeddings", cast_to=object, body={"model": MODEL, "input": "x", "encoding_format": "base64"})
    assert isinstance(raw["data"][0]["embedding"], str)


@pytest.mark.parametrize(("model", "dimensions"), [(MODEL, 256), ("openai/text-embedding-3-large", 3072)])
def test_dimensions_are_honoured(client, model, dimensions):
    reply = client.embeddings.create(model=model, input=["one", "two"], dimensions=dimensions)
    assert [len(d.embedding) for d in reply.data] == [dimensions, dimensions]


def test_native_sizes_and_token_array_inputs(client):
    for model in EMBEDDING_CATALOG:
        assert len(client.embeddings.create(model=model.id, input="x").data[0].embedding) == model.dimensions
    reply = client.embeddings.create(model=MODEL, input=[[1, 2, 3], [4, 5]])
    assert len(reply.data) == 2
    assert reply.usage.prompt_tokens == 5  # a token array counts its tokens


def test_embedding_models_are_listed_apart_from_chat_models(fake_openrouter, client):
    payload = client.get("/embeddings/models", cast_to=object)
    ModelsListResponse.model_validate(payload)
    assert [m["id"] for m in payload["data"]] == [m.id for m in EMBEDDING_CATALOG]
    assert all(m["architecture"]["output_modalities"] == ["embeddings"] for m in payload["data"])
    assert not {m["id"] for m in payload["data"]} & {m.id for m in client.models.list()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": ""}, "input[0]"),
        ({"input": []}, "at least one input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": ["x"] * 2049}, "at most 2048"),
        ({"input": "x" * 40_000}, "at most 8192 per input"),
        ({"input": ["x" * 30_000] * 41}, "at most 300000 per request"),
        ({"input": [{"content": []}]}, "input[0]"),
        ({"input": 5}, "input"),
        ({"model": "openai/gpt-4o-mini"}, "not an embeddings model"),
        ({"model": "acme/unknown-embedder"}, "not a valid model ID"),
        ({"model": "no-slash"}, "not a valid model ID"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": "8"}, "dimensions"),
        ({"dimensions": 1537}, "at most 1536"),
        ({"model": "openai/text-embedding-ada-002", "dimensions": 8}, "does not support 'dimensions'"),
        ({"encoding_format": "binary"}, "encoding_format"),
        ({"user": "u" * 257}, "at most 256 characters"),
        ({"session_id": "s" * 257}, "at most 256 characters"),
        ({"user": 42}, "user"),
        ({"trace": "not an object"}, "trace"),
    ],
)
def test_invalid_requests_are_refused_like_openrouter(fake_openrouter, change, message):
    body = {"model": MODEL, "input": "hello", **change}
    response, data = _post(fake_openrouter, body)
    assert response.status == 400
    error = json.loads(data)["error"]
    assert error["code"] == 400
    assert message in error["message"]
    assert fake_openrouter.generations == {}


def test_body_and_auth_are_required(fake_openrouter):
    assert _post(fake_openrouter, b"")[0].status == 400
    assert _post(fake_openrouter, {"model": MODEL})[0].status == 400  # no input
    response, data = _post(fake_openrouter, {"model": MODEL, "input": "x"}, api_key="sk-or-wrong")
    assert response.status == 401
    assert json.loads(data)["error"]["message"] == "User not found."


@pytest.mark.parametrize(("fault", "error", "message"), STATUS_FAULTS)
def test_status_faults_by_header(client, fault, error, message):
    with pytest.raises(error) as info:
        client.embeddings.create(model=MODEL, input="hi", extra_headers={"X-Fake-Fault": fault})
    assert info.value.status_code == int(fault)
    assert message in info.value.message


def test_fault_model_and_queue_apply_to_embeddings(fake_openrouter, client):
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="fake/fault-503", input="hi")
    fake_openrouter.inject_fault("429", count=1, after=1)
    client.embeddings.create(model=MODEL, input="first passes")
    with pytest.raises(openai.RateLimitError) as info:
        client.embeddings.create(model=MODEL, input="second is limited")
    assert info.value.response.headers["Retry-After"] == "1"
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_in_body_error_malformed_body_and_dropped_connection(fake_openrouter, client):
    response, data = _post(fake_openrouter, {"model": MODEL, "input": "x"}, {"X-Fake-Fault": "mid-stream-error"})
    assert response.status == 200
    assert json.loads(data)["error"]["code"] == 502
    response, data = _post(fake_openrouter, {"model": MODEL, "input": "x"}, {"X-Fake-Fault": "malformed-chunk"})
    assert response.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(data)
    with pytest.raises(openai.APIConnectionError):
        client.embeddings.create(model=MODEL, input="x", extra_headers={"X-Fake-Fault": "drop-connection"})


def test_latency_applies_to_embeddings():
    with FakeOpenRouter(latency=0.2) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=0.1)
        with client, pytest.raises(openai.APITimeoutError):
            client.embeddings.create(model=MODEL, input="slow")
