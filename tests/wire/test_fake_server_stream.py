"""Streaming: SSE over chunked encoding, keep-alive comments, deltas, tool-call deltas, usage last, [DONE]."""

from __future__ import annotations

import http.client
import json

import openai
from openrouter.components import ChatStreamChunk

MAGIC = {
    "type": "function",
    "function": {
        "name": "magic_function",
        "description": "Apply a magic function to an input.",
        "parameters": {"type": "object", "properties": {"input": {"type": "integer"}}, "required": ["input"]},
    },
}


def _stream_raw(conn, server, **body):
    payload = {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me a short story about a cat"}],
        **body,
    }
    conn.request(
        "POST",
        "/api/v1/chat/completions",
        json.dumps(payload),
        {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    return response, response.read()  # http.client decodes the chunked framing and checks its end


def _data_events(raw: bytes) -> list[str]:
    return [block[len("data: ") :] for block in raw.decode().split("\n\n") if block.startswith("data: ")]


def test_raw_sse_shape(fake_openrouter):
    conn = http.client.HTTPConnection("127.0.0.1", fake_openrouter.port, timeout=5)
    response, raw = _stream_raw(conn, fake_openrouter)
    conn.close()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert raw.startswith(b": OPENROUTER PROCESSING\n\n")
    assert raw.count(b": OPENROUTER PROCESSING") >= 2
    events = _data_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        ChatStreamChunk.model_validate(chunk)
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"] == response.getheader("X-Generation-Id")
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    content_deltas = [d["content"] for d in deltas if d.get("content")]
    assert len(content_deltas) >= 3
    assert "".join(content_deltas) == "[openai/gpt-4o-mini] Reply to: Tell me a short story about a cat"
    finish = chunks[-2]["choices"][0]
    assert (finish["finish_reason"], finish["native_finish_reason"]) == ("stop", "stop")
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["cost"] > 0
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]


def test_stream_ends_properly_so_the_connection_is_reused(fake_openrouter):
    conn = http.client.HTTPConnection("127.0.0.1", fake_openrouter.port, timeout=5)
    for _ in range(3):
        response, raw = _stream_raw(conn, fake_openrouter)
        assert raw.endswith(b"data: [DONE]\n\n")
    conn.close()
    assert fake_openrouter.connections_opened == 1


def test_usage_is_sent_even_without_stream_options(client):
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": False},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_extra["cost"] > 0


def test_stream_matches_non_stream(client):
    kwargs = {"model": "anthropic/claude-3.5-sonnet", "messages": [{"role": "user", "content": "Say hello"}]}
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-2].choices[0].model_extra["native_finish_reason"] == "end_turn"


def test_tool_calls_stream_openai_style(client):
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            stream=True,
            tools=[MAGIC],
            messages=[{"role": "user", "content": "What is magic_function(3)?"}],
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first, fragments = calls[0], calls[1:]
    assert (first.index, first.type, first.function.name, first.function.arguments) == (
        0,
        "function",
        "magic_function",
        "",
    )
    assert first.id.startswith("call_")
    assert len(fragments) >= 2
    assert all(f.id is None and f.index == 0 for f in fragments)
    assert json.loads("".join(f.function.arguments for f in fragments)) == {"input": 3}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_parallel_tool_calls_stream_with_distinct_indexes(client):
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            stream=True,
            tools=[MAGIC, weather],
            messages=[{"role": "user", "content": "Call get_weather for 'Oslo' and magic_function(5)"}],
        )
    )
    arguments: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
            if call.function.name:
                names[call.index] = call.function.name
    assert names == {0: "get_weather", 1: "magic_function"}
    assert [json.loads(arguments[i]) for i in (0, 1)] == [{"city": "Oslo"}, {"input": 5}]


async def test_async_stream(fake_openrouter):
    async with openai.AsyncOpenAI(
        base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "[openai/gpt-4o-mini] Reply to: hi"
