"""Chat bodies are validated against OpenRouter's request schema plus its documented limits."""

from __future__ import annotations

import http.client
import json
import warnings
from typing import Any

import openai
import pytest

from openrouter_attribution.testing.validation import validate_chat_request

USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}

FULL_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "models": ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"],
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": "really brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "auto"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {
                    "type": "file",
                    "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,AAAA"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            "reasoning": "thinking",
            "reasoning_details": [
                {
                    "type": "reasoning.text",
                    "text": "thinking",
                    "signature": "sig",
                    "format": "unknown",
                    "index": 0,
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "user", "content": "thanks", "name": "bob"},
    ],
    "user": "u" * 256,
    "session_id": "s" * 256,
    "trace": {
        "trace_id": "t1",
        "trace_name": "n",
        "span_name": "s",
        "generation_name": "g",
        "parent_span_id": "p",
        "custom_key": "passes through",
    },
    "metadata": {f"k{i}".ljust(64, "x"): "v" * 512 for i in range(16)},
    "provider": {
        "order": ["openai"],
        "allow_fallbacks": True,
        "data_collection": "deny",
        "sort": "price",
        "only": ["openai"],
        "ignore": ["azure"],
        "quantizations": ["fp8"],
        "max_price": {"prompt": 1},
    },
    "route": "fallback",
    "reasoning": {"effort": "high", "exclude": False},
    "plugins": [{"id": "web", "max_results": 3}],
    "transforms": ["middle-out"],
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True},
    },
    "tools": [TOOL],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": False,
    "stop": ["END"],
    "seed": 7,
    "top_k": 40,
    "min_p": 0.05,
    "top_a": 0.1,
    "repetition_penalty": 1.1,
    "logprobs": True,
    "top_logprobs": 2,
    "max_tokens": 100,
    "max_completion_tokens": 100,
    "temperature": 0.2,
    "top_p": 0.9,
    "stream": False,
    "stream_options": {"include_usage": True},
    "prediction": {"type": "content", "content": "x"},
}

INVALID = [
    pytest.param({"messages": USER, "models": "openai/gpt-4o"}, "'models'", id="models-not-a-list"),
    pytest.param({"messages": USER, "user": "u" * 257}, "'user' must be at most 256", id="user-257"),
    pytest.param({"messages": USER, "session_id": "s" * 257}, "'session_id' must be at most 256", id="session-257"),
    pytest.param({"messages": USER, "user": 42}, "'user'", id="user-not-string"),
    pytest.param({"messages": USER, "metadata": {str(i): "v" for i in range(17)}}, "at most 16 pairs", id="meta-17"),
    pytest.param({"messages": USER, "metadata": {"k" * 65: "v"}}, "keys must be at most 64", id="meta-key-65"),
    pytest.param({"messages": USER, "metadata": {"k": "v" * 513}}, "'metadata.k' must be at most 512", id="meta-513"),
    pytest.param({"messages": USER, "metadata": {"k": 1}}, "'metadata.k'", id="meta-not-string"),
    pytest.param({"messages": USER, "trace": "t"}, "'trace'", id="trace-not-object"),
    pytest.param({"messages": []}, "'messages'", id="messages-empty"),
    pytest.param({"model": "openai/gpt-4o-mini"}, "'messages'", id="messages-missing"),
    pytest.param({"messages": [{"role": "robot", "content": "x"}]}, "'messages[0]'", id="bad-role"),
    pytest.param({"messages": [{"role": "tool", "content": "x"}]}, "'messages[0].tool_call_id'", id="tool-no-id"),
    pytest.param({"messages": USER, "max_tokens": "5"}, "'max_tokens'", id="max-tokens-string"),
    pytest.param({"messages": USER, "temperature": "hot"}, "'temperature'", id="temperature-string"),
    pytest.param({"messages": USER, "stream": "yes"}, "'stream'", id="stream-string"),
    # OpenRouter's documented ranges (https://openrouter.ai/docs/api-reference/parameters).
    pytest.param({"messages": USER, "temperature": 7}, "'temperature': must be between 0 and 2", id="temp-7"),
    pytest.param({"messages": USER, "temperature": -0.1}, "'temperature'", id="temp-negative"),
    pytest.param({"messages": USER, "top_p": 1.5}, "'top_p': must be between 0 and 1", id="top-p"),
    pytest.param({"messages": USER, "top_k": -1}, "'top_k': must be at least 0", id="top-k"),
    pytest.param({"messages": USER, "frequency_penalty": -2.5}, "'frequency_penalty'", id="freq-penalty"),
    pytest.param({"messages": USER, "presence_penalty": 3}, "'presence_penalty'", id="presence-penalty"),
    pytest.param({"messages": USER, "repetition_penalty": 2.5}, "'repetition_penalty'", id="rep-penalty"),
    pytest.param({"messages": USER, "min_p": 1.1}, "'min_p'", id="min-p"),
    pytest.param({"messages": USER, "top_a": -0.5}, "'top_a'", id="top-a"),
    pytest.param({"messages": USER, "max_tokens": 0}, "'max_tokens': must be at least 1", id="max-tokens-0"),
    pytest.param({"messages": USER, "top_logprobs": 21}, "'top_logprobs'", id="top-logprobs-21"),
    pytest.param({"messages": USER, "tool_choice": "any"}, "'tool_choice'", id="tool-choice-any"),
    pytest.param({"messages": USER, "reasoning": {"effort": "extreme"}}, "'reasoning.effort'", id="effort"),
    pytest.param({"messages": USER, "reasoning": {"max_tokens": -1}}, "'reasoning.max_tokens'", id="reasoning-max"),
    pytest.param({"messages": USER, "reasoning": {"exclude": "yes"}}, "'reasoning.exclude'", id="exclude"),
    pytest.param({"messages": USER, "transforms": "middle-out"}, "'transforms'", id="transforms"),
    pytest.param({"messages": USER, "route": 3}, "'route'", id="route"),
    pytest.param({"messages": USER, "plugins": [{"id": "nope"}]}, "'plugins[0]'", id="plugin"),
    pytest.param(
        {"messages": USER, "response_format": {"type": "json_schema"}},
        "'response_format.json_schema'",
        id="json-schema-missing",
    ),
    pytest.param(
        {"messages": USER, "tools": [{"type": "function", "function": {"description": "x"}}]},
        "'tools[0].function.name'",
        id="tool-without-name",
    ),
    pytest.param(
        {"messages": USER, "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
        "'tool_choice' names function 'g'",
        id="tool-choice-unknown",
    ),
]


def _post(server, raw: bytes, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request(
        "POST",
        "/api/v1/chat/completions",
        body=raw,
        headers={
            "Authorization": f"Bearer {server.api_key}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def test_every_documented_field_passes(fake_openrouter):
    status, payload = _post(fake_openrouter, json.dumps(FULL_BODY).encode())
    assert status == 200, payload
    assert payload["object"] == "chat.completion"


def test_documented_fields_pass_through_the_openai_sdk(fake_openrouter):
    extra = {
        k: FULL_BODY[k]
        for k in (
            "user",
            "session_id",
            "trace",
            "metadata",
            "models",
            "provider",
            "route",
            "reasoning",
            "plugins",
            "transforms",
            "top_k",
            "min_p",
            "top_a",
            "repetition_penalty",
        )
    }
    with openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=USER,
            extra_body=extra,
            seed=1,
            stop=["x"],
            logprobs=True,
            top_logprobs=1,
            max_tokens=50,
        )
    assert reply.choices[0].message.content
    assert fake_openrouter.last_request.body["metadata"] == FULL_BODY["metadata"]


@pytest.mark.parametrize(("body", "fragment"), INVALID)
def test_invalid_bodies_are_400_naming_the_field(fake_openrouter, body, fragment):
    status, payload = _post(fake_openrouter, json.dumps(body).encode())
    assert status == 400
    assert set(payload) == {"error"}
    assert payload["error"]["code"] == 400
    assert fragment in payload["error"]["message"]
    assert payload["error"]["metadata"] == {}
    assert fake_openrouter.generations == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "Request body is required"),
        (b"{not json", "Request body must be a JSON object"),
        (b"[1, 2]", "Request body must be a JSON object"),
    ],
)
def test_non_object_bodies_are_400(fake_openrouter, raw, message):
    assert _post(fake_openrouter, raw) == (400, {"error": {"code": 400, "message": message, "metadata": {}}})


def test_openai_sdk_raises_bad_request(fake_openrouter):
    with (
        openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as info,
    ):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER, user="u" * 257)
    assert info.value.status_code == 400
    assert "'user'" in info.value.message


def test_deprecated_stream_options_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_chat_request({"messages": USER, "stream": True, "stream_options": {"include_usage": True}})
