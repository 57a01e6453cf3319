"""Non-streaming chat completions: OpenRouter's body shape, usage with cost, limits, fallbacks, caching."""

from __future__ import annotations

import http.client
import json
from decimal import Decimal

import openai
import pytest
from openrouter.components import ChatResult

from openrouter_attribution.testing import CATALOG
from openrouter_attribution.testing.catalog import DEFAULT_MODEL
from openrouter_attribution.testing.content import estimate_tokens


def _ask(client, text="What is the capital of France?", **kwargs):
    return client.chat.completions.with_raw_response.create(
        model=kwargs.pop("model", "openai/gpt-4o-mini"),
        messages=[{"role": "user", "content": text}],
        **kwargs,
    )


def test_body_has_openrouter_shape(client):
    raw = _ask(client)
    body = raw.http_response.json()
    ChatResult.model_validate(body)
    reply = raw.parse()
    assert reply.id.startswith("gen-")
    assert raw.headers["X-Generation-Id"] == reply.id
    assert body["object"] == "chat.completion"
    assert body["provider"] == "OpenAI"
    assert reply.model == "openai/gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "[openai/gpt-4o-mini] Reply to: What is the capital of France?"
    assert (choice["finish_reason"], choice["native_finish_reason"]) == ("stop", "stop")


@pytest.mark.parametrize("model", [m.id for m in CATALOG])
def test_usage_and_cost_follow_catalog_pricing(client, model):
    body = _ask(client, model=model).http_response.json()
    usage = body["usage"]
    info = next(m for m in CATALOG if m.id == model)
    assert usage["prompt_tokens"] == estimate_tokens("What is the capital of France?")
    assert usage["completion_tokens"] >= 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    expected = (
        Decimal(info.prompt_price) * usage["prompt_tokens"]
        + Decimal(info.completion_price) * usage["completion_tokens"]
    )
    assert isinstance(usage["cost"], float)
    assert usage["cost"] == pytest.approx(float(expected))
    assert usage["is_byok"] is False
    assert usage["cost_details"]["upstream_inference_cost"] == pytest.approx(usage["cost"])
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    reasoning_tokens = usage["completion_tokens_details"]["reasoning_tokens"]
    assert (reasoning_tokens > 0) == info.reasoning


def test_ids_are_unique(client):
    assert len({_ask(client).parse().id for _ in range(20)}) == 20


def test_answer_is_deterministic(client):
    assert _ask(client).parse().choices[0].message.content == _ask(client).parse().choices[0].message.content


def test_long_user_text_is_truncated_in_the_reply(client):
    content = _ask(client, "word " * 100).parse().choices[0].message.content
    assert content.startswith("[openai/gpt-4o-mini] Reply to: word word")
    assert content.endswith("...")


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_limit_truncates_with_length(client, field):
    reply = _ask(client, "tell me everything", **{field: 3}).parse()
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "[openai/gpt-4o-mini] Reply to: tell me everything"[:12]
    assert reply.usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("stop", "content"),
    [
        (["Reply"], "[openai/gpt-4o-mini] "),
        ("France", "[openai/gpt-4o-mini] Reply to: What is the capital of "),
        (["zzz", "capital", "to:"], "[openai/gpt-4o-mini] Reply "),
        (["absent"], None),
    ],
)
def test_stop_cuts_at_the_first_stop_string(client, stop, content):
    reply = _ask(client, stop=stop).parse()
    expected = content or "[openai/gpt-4o-mini] Reply to: What is the capital of France?"
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"


def test_models_fallback_serves_first_real_model(client):
    reply = _ask(
        client,
        model="fake/fault-502",
        extra_body={"models": ["fake/fault-503", "anthropic/claude-3.5-sonnet", "openai/gpt-4o"]},
    ).parse()
    assert reply.model == "anthropic/claude-3.5-sonnet"
    assert reply.model_extra["provider"] == "Anthropic"
    assert reply.choices[0].message.content.startswith("[anthropic/claude-3.5-sonnet]")


def test_models_without_model_serves_the_first(fake_openrouter):
    conn = http.client.HTTPConnection("127.0.0.1", fake_openrouter.port, timeout=5)
    body = {"models": ["google/gemini-2.0-flash-001"], "messages": [{"role": "user", "content": "hi"}]}
    conn.request(
        "POST",
        "/api/v1/chat/completions",
        json.dumps(body),
        {"Authorization": f"Bearer {fake_openrouter.api_key}", "Content-Type": "application/json"},
    )
    reply = json.loads(conn.getresponse().read())
    conn.close()
    assert reply["model"] == "google/gemini-2.0-flash-001"
    assert reply["provider"] == "Google AI Studio"
    assert reply["choices"][0]["native_finish_reason"] == "STOP"


def test_no_model_at_all_serves_the_account_default(fake_openrouter):
    conn = http.client.HTTPConnection("127.0.0.1", fake_openrouter.port, timeout=5)
    conn.request(
        "POST",
        "/api/v1/chat/completions",
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        {"Authorization": f"Bearer {fake_openrouter.api_key}"},
    )
    assert json.loads(conn.getresponse().read())["model"] == DEFAULT_MODEL
    conn.close()


def test_empty_model_id_is_rejected(client):
    with pytest.raises(openai.BadRequestError, match="is not a valid model ID"):
        _ask(client, model="")


def test_prompt_caching_is_sticky_per_user(client):
    history = [
        {"role": "system", "content": "You are a helpful assistant. " * 20},
        {"role": "user", "content": "first question"},
    ]

    def cached(messages, user, model="openai/gpt-4o-mini"):
        reply = client.chat.completions.create(model=model, messages=messages, user=user)
        return reply.usage.prompt_tokens_details.cached_tokens, reply.usage.prompt_tokens

    assert cached(history, "alice")[0] == 0
    follow_up = [*history, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "second"}]
    hit, total = cached(follow_up, "alice")
    assert 0 < hit < total
    assert hit == sum(estimate_tokens(m["content"]) for m in history)
    assert cached(follow_up, "alice", model="openai/gpt-4o")[0] == 0  # another model, another cache
    assert cached(follow_up, "bob")[0] == 0
    assert cached(follow_up, "bob")[0] == total  # the identical request again: all of it is cached


def test_multimodal_content_parts_are_read(client):
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "this image"},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == "[openai/gpt-4o-mini] Reply to: Describe this image"
