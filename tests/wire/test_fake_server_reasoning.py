"""Reasoning: requested or built into the model -> reasoning text, reasoning_details and reasoning tokens."""

from __future__ import annotations

import pytest

from openrouter_attribution.testing.content import reasoning_signature


def _raw(client, model="openai/gpt-4o-mini", **extra):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Why is the sky blue?"}], extra_body=extra
    )
    return raw.http_response.json()


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("openai/gpt-4o-mini", {"reasoning": {"effort": "high"}}),
        ("openai/gpt-4o-mini", {"reasoning": {"max_tokens": 2000}}),
        ("openai/gpt-4o-mini", {"reasoning": {"enabled": True}}),
        ("openai/gpt-4o-mini", {"reasoning_effort": "low"}),
        ("deepseek/deepseek-r1", {}),
    ],
)
def test_reasoning_fields(client, model, extra):
    body = _raw(client, model, **extra)
    message = body["choices"][0]["message"]
    assert message["reasoning"].startswith('The user wrote "Why is the sky blue?"')
    assert message["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "text": message["reasoning"],
            "signature": reasoning_signature(message["reasoning"]),
            "format": "unknown",
            "index": 0,
        }
    ]
    assert message["content"] == f"[{model}] Reply to: Why is the sky blue?"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert body["usage"]["completion_tokens"] > body["usage"]["completion_tokens_details"]["reasoning_tokens"]


@pytest.mark.parametrize(
    "extra",
    [{}, {"reasoning": {"enabled": False}}, {"reasoning": {"effort": "none"}}, {"reasoning_effort": "none"}],
)
def test_no_reasoning(client, extra):
    body = _raw(client, **extra)
    assert body["choices"][0]["message"]["reasoning"] is None
    assert "reasoning_details" not in body["choices"][0]["message"]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


def test_exclude_counts_tokens_but_hides_text(client):
    body = _raw(client, reasoning={"effort": "medium", "exclude": True})
    assert body["choices"][0]["message"]["reasoning"] is None
    assert "reasoning_details" not in body["choices"][0]["message"]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


def test_reasoning_budget_limits_reasoning_tokens(client):
    body = _raw(client, reasoning={"max_tokens": 3})
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3


def test_reasoning_streams_as_deltas(client):
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": "Why is the sky blue?"}],
            extra_body={"reasoning": {"effort": "high"}},
        )
    )
    deltas = [c.choices[0].delta.model_extra for c in chunks if c.choices]
    reasoning = [d["reasoning"] for d in deltas if d.get("reasoning")]
    details = [detail for d in deltas for detail in d.get("reasoning_details") or []]
    assert len(reasoning) >= 2
    text = "".join(reasoning)
    assert "".join(d["text"] for d in details) == text
    assert [d.get("signature") for d in details][-1] == reasoning_signature(text)
    assert all(d["type"] == "reasoning.text" for d in details)
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens > 0


def test_reasoning_details_are_accepted_back(client):
    first = _raw(client, reasoning={"effort": "high"})["choices"][0]["message"]
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[
            {"role": "user", "content": "Why is the sky blue?"},
            {
                "role": "assistant",
                "content": first["content"],
                "reasoning": first["reasoning"],
                "reasoning_details": first["reasoning_details"],
            },
            {"role": "user", "content": "And at sunset?"},
        ],
        extra_body={"reasoning": {"effort": "high"}},
    )
    assert reply.choices[0].message.content == "[openai/gpt-4o-mini] Reply to: And at sunset?"
