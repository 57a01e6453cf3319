"""GET /models, /generation and /key in OpenRouter's shapes (checked against the official SDK's models)."""

from __future__ import annotations

import http.client
import json
import warnings
from decimal import Decimal

import openai
import pytest
from openrouter.components import GenerationResponse, ModelsListResponse
from openrouter.operations.getcurrentkey import GetCurrentKeyResponse

from openrouter_attribution.testing import CATALOG, DEFAULT_PRICING, FakeOpenRouter


def _get(server, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", path, headers={"Authorization": f"Bearer {server.api_key}", **(headers or {})})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def test_models_lists_realistic_models_with_per_token_pricing(fake_openrouter):
    status, payload = _get(fake_openrouter, "/api/v1/models")
    assert status == 200
    ModelsListResponse.model_validate(payload)
    ids = [m["id"] for m in payload["data"]]
    for expected in (
        "openai/gpt-4o-mini",
        "anthropic/claude-3.5-sonnet",
        "google/gemini-2.0-flash-001",
        "meta-llama/llama-3.1-8b-instruct",
        "deepseek/deepseek-r1",
    ):
        assert expected in ids
    router = next(m for m in payload["data"] if m["id"] == "openrouter/auto")
    assert router["pricing"]["prompt"] == router["pricing"]["completion"] == "-1"  # as OpenRouter lists it
    for model in payload["data"]:
        if model is router:
            continue
        assert isinstance(model["pricing"]["prompt"], str)
        assert Decimal(model["pricing"]["prompt"]) > 0
        assert Decimal(model["pricing"]["completion"]) >= Decimal(model["pricing"]["prompt"])
        assert model["top_provider"]["context_length"] == model["context_length"]
        assert model["top_provider"]["max_completion_tokens"] > 0
        assert "max_tokens" in model["supported_parameters"]
    r1 = next(m for m in payload["data"] if m["id"] == "deepseek/deepseek-r1")
    assert "reasoning" in r1["supported_parameters"]


def test_models_via_openai_sdk(client):
    assert {m.id for m in client.models.list()} == {m.id for m in CATALOG} | {"openrouter/auto"}


def test_generation_returns_user_session_and_usage(fake_openrouter, client):
    reply = client.chat.completions.create(
        model="anthropic/claude-3.5-sonnet",
        messages=[{"role": "user", "content": "hello there"}],
        extra_body={"user": "app_7", "session_id": "sess-9"},
    )
    status, payload = _get(fake_openrouter, f"/api/v1/generation?id={reply.id}")
    assert status == 200
    GenerationResponse.model_validate(payload)
    data = payload["data"]
    assert data["id"] == reply.id
    assert (data["user"], data["external_user"], data["session_id"]) == ("app_7", "app_7", "sess-9")
    assert data["model"] == "anthropic/claude-3.5-sonnet"
    assert data["provider_name"] == "Anthropic"
    assert data["tokens_prompt"] == reply.usage.prompt_tokens
    assert data["tokens_completion"] == reply.usage.completion_tokens
    assert data["total_cost"] == pytest.approx(reply.usage.model_extra["cost"])
    assert data["streamed"] is False
    assert data["created_at"].startswith("20")
    assert fake_openrouter.generations[reply.id] == data


def test_generation_session_from_header_when_body_has_none(fake_openrouter, client):
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-session-id": "from-header"},
    )
    assert fake_openrouter.generations[reply.id]["session_id"] == "from-header"
    assert fake_openrouter.generations[reply.id]["user"] is None


def test_streamed_generation_is_marked(fake_openrouter, client):
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert fake_openrouter.generations[chunks[0].id]["streamed"] is True


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?id=gen-unknown", 404, "Generation gen-unknown not found"),
        ("", 400, "Missing required query parameter: id"),
    ],
)
def test_generation_errors(fake_openrouter, query, status, message):
    assert _get(fake_openrouter, f"/api/v1/generation{query}") == (
        status,
        {"error": {"code": status, "message": message, "metadata": {}}},
    )


def test_key_reports_usage_of_served_generations(fake_openrouter, client):
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    status, payload = _get(fake_openrouter, "/api/v1/key")
    assert status == 200
    with warnings.catch_warnings():  # the SDK marks `rate_limit` deprecated, yet still requires it
        warnings.simplefilter("ignore", DeprecationWarning)
        GetCurrentKeyResponse.model_validate(payload)
    total = sum(g["total_cost"] for g in fake_openrouter.generations.values())
    assert payload["data"]["usage"] == pytest.approx(total)
    assert total > 0
    assert payload["data"]["is_free_tier"] is False


def test_a_model_added_by_id_gets_default_pricing():
    with (
        FakeOpenRouter(models=["acme/brand-new-model"]) as server,
        openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as client,
    ):
        reply = client.chat.completions.create(
            model="acme/brand-new-model", messages=[{"role": "user", "content": "hi"}]
        )
    prompt, completion = (Decimal(p) for p in DEFAULT_PRICING)
    expected = prompt * reply.usage.prompt_tokens + completion * reply.usage.completion_tokens
    assert reply.usage.model_extra["cost"] == pytest.approx(float(expected))
    assert reply.model == "acme/brand-new-model"


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/api/v1/unknown", 404), ("GET", "/api/v1/chat/completions", 405)]
)
def test_unknown_routes(fake_openrouter, method, path, status):
    got, payload = _get(fake_openrouter, path)
    assert got == status
    assert payload["error"]["code"] == status
