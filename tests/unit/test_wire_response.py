"""Parsing completions, stream chunks and usage; errors inside 200 answers raise."""

from __future__ import annotations

from decimal import Decimal

import pytest

from openrouter_attribution import errors
from openrouter_attribution.wire.response import Usage, parse_chunk, parse_completion, parse_usage

USAGE = {
    "prompt_tokens": 10,
    "completion_tokens": 5,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 1},
    "completion_tokens_details": {"reasoning_tokens": 2},
    "cost": 0.00012,
    "cost_details": {"upstream_inference_cost": 0.0001},
    "is_byok": False,
}


def test_usage_is_parsed_with_exact_cost():
    assert parse_usage(USAGE) == Usage(
        prompt_tokens=10, completion_tokens=5, total_tokens=15, cached_tokens=4, cache_write_tokens=1,
        reasoning_tokens=2, cost=Decimal("0.00012"), upstream_inference_cost=Decimal("0.0001"), is_byok=False,
    )  # fmt: skip


@pytest.mark.parametrize("raw", [None, {}, {"prompt_tokens": 1}])
def test_unknown_cost_stays_none(raw):
    usage = parse_usage(raw)
    assert usage is None or usage.cost is None


def test_completion_fields():
    body = {
        "id": "gen-1",
        "model": "openai/gpt-4o-mini",
        "provider": "OpenAI",
        "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
    completion = parse_completion(body)
    assert (completion.id, completion.model, completion.provider, completion.finish_reason) == (
        "gen-1", "openai/gpt-4o-mini", "OpenAI", "stop",
    )  # fmt: skip
    assert completion.message["content"] == "hi"
    assert completion.usage is not None
    assert completion.usage.cost == Decimal("0.00012")


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ("not json object", errors.InvalidResponseError),
        ({"choices": []}, errors.InvalidResponseError),
        ({"choices": [{"finish_reason": "stop"}]}, errors.InvalidResponseError),
        ({"error": {"code": 502, "message": "upstream died"}}, errors.ProviderUnavailableError),
        ({"error": {"code": 429, "message": "slow down"}}, errors.RateLimitError),
        (
            {"id": "gen-2", "choices": [{"message": {"content": ""}, "finish_reason": "error"}]},
            errors.APIError,
        ),
    ],
)
def test_bad_or_failed_completions_raise(body, error_type):
    with pytest.raises(error_type):
        parse_completion(body)


def test_chunk_delta_finish_and_usage():
    delta, finish, usage = parse_chunk({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]})
    assert (delta, finish, usage) == ({"content": "a"}, None, None)
    delta, finish, usage = parse_chunk({"choices": [], "usage": USAGE})
    assert delta == {}
    assert finish is None
    assert usage is not None
    assert usage.prompt_tokens == 10


def test_mid_stream_error_chunk_raises_typed_error():
    chunk = {
        "id": "gen-3",
        "error": {"code": 502, "message": "provider disconnected", "metadata": {"provider_name": "X"}},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    with pytest.raises(errors.ProviderUnavailableError) as info:
        parse_chunk(chunk)
    assert info.value.in_stream
    assert info.value.generation_id == "gen-3"
    assert info.value.metadata == {"provider_name": "X"}
    assert "mid-stream" in str(info.value)


def test_non_object_chunk_raises():
    with pytest.raises(errors.InvalidResponseError):
        parse_chunk(["nope"])
