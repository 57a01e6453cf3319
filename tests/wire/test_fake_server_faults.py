"""Fault injection by header, reserved model id and queue; each fault on the wire as OpenRouter sends it."""

from __future__ import annotations

import http.client
import json

import openai
import pytest

from openrouter_attribution.testing import FAULT_NAMES

MESSAGES = [{"role": "user", "content": "tell me a long story about dragons"}]
STATUS_FAULTS = [
    ("401", openai.AuthenticationError, "User not found."),
    ("402", openai.APIStatusError, "Insufficient credits"),
    ("403", openai.PermissionDeniedError, "requires moderation"),
    ("408", openai.APIStatusError, "timed out"),
    ("429", openai.RateLimitError, "Rate limit exceeded"),
    ("502", openai.InternalServerError, "Provider returned error"),
    ("503", openai.InternalServerError, "No allowed providers"),
]


def _raw(server, headers=None, **body):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    payload = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, **body}
    conn.request(
        "POST",
        "/api/v1/chat/completions",
        json.dumps(payload),
        {"Authorization": f"Bearer {server.api_key}", **(headers or {})},
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


@pytest.mark.parametrize(("fault", "error", "message"), STATUS_FAULTS)
@pytest.mark.parametrize("stream", [False, True])
def test_status_faults_by_header(fake_openrouter, client, fault, error, message, stream):
    with pytest.raises(error) as info:
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=MESSAGES,
            stream=stream,
            extra_headers={"X-Fake-Fault": fault},
        )
    assert info.value.status_code == int(fault)
    assert message in info.value.message
    response, data = _raw(fake_openrouter, {"X-Fake-Fault": fault}, stream=stream)
    body = json.loads(data)
    assert response.status == body["error"]["code"] == int(fault)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "metadata"}
    assert response.getheader("Retry-After") == ("1" if fault == "429" else None)
    assert fake_openrouter.generations == {}


def test_moderation_metadata(fake_openrouter):
    long_text = "x" * 80 + " flagged words " + "y" * 80
    _, data = _raw(fake_openrouter, {"X-Fake-Fault": "403"}, messages=[{"role": "user", "content": long_text}])
    metadata = json.loads(data)["error"]["metadata"]
    assert metadata["reasons"] == ["harassment"]
    assert metadata["provider_name"] == "OpenAI"
    assert metadata["model_slug"] == "openai/gpt-4o-mini"
    assert len(metadata["flagged_input"]) == 100
    assert "..." in metadata["flagged_input"]


def test_provider_error_metadata(fake_openrouter):
    _, data = _raw(fake_openrouter, {"X-Fake-Fault": "502"}, model="anthropic/claude-3.5-sonnet")
    assert json.loads(data)["error"]["metadata"]["provider_name"] == "Anthropic"


@pytest.mark.parametrize(("value", "header"), [("0", "0"), ("2.5", "2.5"), ("30", "30")])
def test_retry_after_from_header(fake_openrouter, value, header):
    response, _ = _raw(fake_openrouter, {"X-Fake-Fault": "503", "X-Fake-Retry-After": value})
    assert response.getheader("Retry-After") == header


def _raw_or_drop(server, headers=None, **body):
    try:
        return _raw(server, headers, **body)
    except (http.client.RemoteDisconnected, ConnectionError):
        return None, b""  # the server closed the connection without answering


@pytest.mark.parametrize("fault", ["429", "502", "403", "mid-stream-error", "drop-connection"])
def test_faults_by_reserved_model_id(fake_openrouter, fault):
    direct = _raw_or_drop(fake_openrouter, {}, model=f"fake/fault-{fault}")
    listed = _raw_or_drop(
        fake_openrouter, {}, model=f"fake/fault-{fault}", models=[f"fake/fault-{fault}", "fake/fault-401"]
    )
    for response, data in (direct, listed):
        if fault == "drop-connection":
            assert response is None
        elif fault == "mid-stream-error":
            assert response.status == 200
            assert json.loads(data)["choices"][0]["finish_reason"] == "error"
        else:
            assert response.status == int(fault)


def test_queued_faults_apply_in_order_after_skipping(fake_openrouter, client):
    fake_openrouter.inject_fault("502", count=2, after=1)
    fake_openrouter.inject_fault("429", retry_after=0)
    outcomes = []
    for _ in range(5):
        try:
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
            outcomes.append("ok")
        except openai.APIStatusError as err:
            outcomes.append(f"{err.status_code}:{err.response.headers.get('Retry-After')}")
    assert outcomes == ["ok", "502:None", "502:None", "429:0", "ok"]


def test_queue_is_not_consumed_by_rejected_requests(fake_openrouter, client):
    fake_openrouter.inject_fault("503")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)


def test_sdk_retry_honours_retry_after_zero(fake_openrouter):
    fake_openrouter.inject_fault("429", retry_after=0)
    with openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=1) as client:
        reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content
    assert len(fake_openrouter.chat_requests) == 2


def _consume(client, fault: str, *, stream: bool, sink: list) -> None:
    """Call with the fault header; for a stream, collect each chunk's content into ``sink``."""
    result = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=MESSAGES, stream=stream, extra_headers={"X-Fake-Fault": fault}
    )
    for chunk in result if stream else []:
        sink.append(chunk.choices[0].delta.content)


def test_mid_stream_error_streaming(fake_openrouter, client):
    received: list = []
    with pytest.raises(openai.APIError) as info:
        _consume(client, "mid-stream-error", stream=True, sink=received)
    assert len(received) == 2
    assert all(received)
    assert info.value.body["code"] == 502
    response, raw = _raw(fake_openrouter, {"X-Fake-Fault": "mid-stream-error"}, stream=True)
    assert response.status == 200
    events = [b[len("data: ") :] for b in raw.decode().split("\n\n") if b.startswith("data: ")]
    error_chunk = json.loads(events[-1])
    assert "[DONE]" not in events
    assert error_chunk["object"] == "chat.completion.chunk"
    assert error_chunk["id"] == json.loads(events[0])["id"]
    assert error_chunk["error"]["code"] == 502
    assert error_chunk["error"]["metadata"]["provider_name"] == "OpenAI"
    assert error_chunk["choices"] == [
        {
            "index": 0,
            "delta": {"content": ""},
            "finish_reason": "error",
            "native_finish_reason": "error",
            "logprobs": None,
        }
    ]


def test_mid_stream_error_non_streaming(fake_openrouter):
    response, data = _raw(fake_openrouter, {"X-Fake-Fault": "mid-stream-error"})
    body = json.loads(data)
    assert response.status == 200
    assert body["error"]["code"] == 502
    assert body["choices"][0]["finish_reason"] == "error"
    assert body["choices"][0]["message"]["content"]
    assert fake_openrouter.generations[body["id"]]["finish_reason"] == "error"


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_chunk(fake_openrouter, client, stream):
    with pytest.raises(json.JSONDecodeError):
        _consume(client, "malformed-chunk", stream=stream, sink=[])
    response, raw = _raw(fake_openrouter, {"X-Fake-Fault": "malformed-chunk"}, stream=stream)
    assert response.status == 200
    if stream:
        events = [b[len("data: ") :] for b in raw.decode().split("\n\n") if b.startswith("data: ")]
        json.loads(events[0])
        with pytest.raises(json.JSONDecodeError):
            json.loads(events[1])


@pytest.mark.parametrize("stream", [False, True])
def test_drop_connection(fake_openrouter, client, stream):
    received: list = []
    with pytest.raises(openai.APIConnectionError):
        _consume(client, "drop-connection", stream=stream, sink=received)
    assert len(received) == (2 if stream else 0)
    reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content  # the server keeps serving


def test_slow_first_byte_times_out_a_short_client_timeout(fake_openrouter, client):
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(
            model="openai/gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Fake-Fault": "slow-first-byte"}
        )


@pytest.mark.parametrize("how", ["header", "queue"])
def test_slow_first_byte_then_answers(fake_openrouter, client, how):
    headers = {"X-Fake-Fault": "slow-first-byte", "X-Fake-Delay-Ms": "20"} if how == "header" else {}
    if how == "queue":
        fake_openrouter.inject_fault("slow-first-byte", delay_ms=20)
    reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, extra_headers=headers)
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("headers", "model"), [({"X-Fake-Fault": "500"}, "openai/gpt-4o-mini"), ({}, "fake/fault-teapot")]
)
def test_unknown_fault_is_a_bad_request(fake_openrouter, headers, model):
    response, data = _raw(fake_openrouter, headers, model=model)
    assert response.status == 400
    assert "Unknown fake fault" in json.loads(data)["error"]["message"]


def test_inject_fault_rejects_unknown_names_and_counts(fake_openrouter):
    with pytest.raises(ValueError, match="Unknown fake fault"):
        fake_openrouter.inject_fault("418")
    with pytest.raises(ValueError, match="count"):
        fake_openrouter.inject_fault("429", count=0)
    assert set(FAULT_NAMES) >= {
        "401",
        "mid-stream-error",
        "malformed-chunk",
        "drop-connection",
        "slow-first-byte",
    }


def test_latency_delays_but_answers(fake_openrouter, client):
    fake_openrouter.latency = 0.01
    assert client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES).choices
