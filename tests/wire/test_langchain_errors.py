"""Every fault the local server injects surfaces as the matching typed error; bad input sends nothing."""

from __future__ import annotations

import asyncio

import pytest

from openrouter_attribution import errors
from tests.wire.conftest import STATUS_FAULTS


@pytest.mark.parametrize(("fault", "error_type"), STATUS_FAULTS)
@pytest.mark.parametrize("streaming", [False, True])
def test_http_faults_map_to_typed_errors(fake_openrouter, make_chat, fault, error_type, streaming):
    model = make_chat(default_headers={"X-Fake-Fault": fault})
    with pytest.raises(error_type) as info:
        list(model.stream("hi")) if streaming else model.invoke("hi")
    err = info.value
    assert err.status_code == int(fault)
    assert err.message
    if fault == "429":
        assert err.retry_after is not None
    if fault == "403":
        assert err.metadata.get("reasons")


def test_mid_stream_error_raises_instead_of_a_truncated_answer(fake_openrouter, make_chat):
    model = make_chat(default_headers={"X-Fake-Fault": "mid-stream-error"})
    received = []

    def consume() -> None:
        for chunk in model.stream("tell me a long story"):
            received.append(chunk)

    with pytest.raises(errors.APIError) as info:
        consume()
    assert info.value.in_stream
    assert received, "content before the error is delivered, then the error is raised"


def test_mid_stream_error_async(fake_openrouter, make_chat):
    model = make_chat(default_headers={"X-Fake-Fault": "mid-stream-error"})

    async def run() -> None:
        async for _ in model.astream("tell me a long story"):
            pass

    with pytest.raises(errors.APIError) as info:
        asyncio.run(run())
    assert info.value.in_stream


@pytest.mark.parametrize("streaming", [False, True])
def test_malformed_response(fake_openrouter, make_chat, streaming):
    model = make_chat(default_headers={"X-Fake-Fault": "malformed-chunk"})
    with pytest.raises(errors.InvalidResponseError):
        list(model.stream("hi")) if streaming else model.invoke("hi")


@pytest.mark.parametrize("streaming", [False, True])
def test_dropped_connection(fake_openrouter, make_chat, streaming):
    model = make_chat(default_headers={"X-Fake-Fault": "drop-connection"})
    with pytest.raises(errors.APIConnectionError):
        list(model.stream("hi")) if streaming else model.invoke("hi")


def test_slow_first_byte_times_out(fake_openrouter, make_chat):
    model = make_chat(timeout=0.3, default_headers={"X-Fake-Fault": "slow-first-byte"})
    with pytest.raises(errors.APITimeoutError):
        model.invoke("hi")


def test_retry_after_is_honoured_by_the_sdk_retry(fake_openrouter, make_chat):
    fake_openrouter.inject_fault("429", count=1, retry_after=0)
    answer = make_chat(max_retries=1).invoke("hi", user="u1")
    assert answer.content
    assert len(fake_openrouter.chat_requests) == 2


def test_insufficient_credits_is_not_retried(fake_openrouter, make_chat):
    fake_openrouter.inject_fault("402", count=5)
    with pytest.raises(errors.InsufficientCreditsError):
        make_chat(max_retries=3).invoke("hi")
    assert len(fake_openrouter.chat_requests) == 1


@pytest.mark.parametrize(
    "bad_user",
    ["", "   ", "x" * 257, "bad\x00id", 42],
)
def test_invalid_user_raises_before_any_request(fake_openrouter, make_chat, bad_user):
    with pytest.raises(ValueError, match="user") as info:
        make_chat().invoke("hi", user=bad_user)
    assert isinstance(info.value, errors.UserIdError)
    assert fake_openrouter.chat_requests == []


def test_unknown_parameter_raises_before_any_request(fake_openrouter, make_chat):
    with pytest.raises(errors.ConfigurationError, match="temprature"):
        make_chat().invoke("hi", temprature=0.5)
    assert fake_openrouter.chat_requests == []


def test_missing_key_fails_at_construction(monkeypatch):
    from openrouter_attribution.langchain import ChatOpenRouter

    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="OPENROUTER_API_KEY"):
        ChatOpenRouter(model="openai/gpt-4o-mini")


def test_server_rejection_is_a_bad_request(fake_openrouter, make_chat):
    with pytest.raises(errors.BadRequestError):
        make_chat(model="not-a-model-id").invoke("hi")


@pytest.mark.parametrize("fault", ["slow-first-byte", "drop-connection", "429", "mid-stream-error"])
def test_async_faults_on_the_async_transport(fake_openrouter, make_chat, fault):
    expected = {
        "slow-first-byte": errors.APITimeoutError,
        "drop-connection": errors.APIConnectionError,
        "429": errors.RateLimitError,
        "mid-stream-error": errors.APIError,
    }[fault]
    model = make_chat(timeout=0.3, default_headers={"X-Fake-Fault": fault})

    async def run() -> None:
        async for _ in model.astream("tell me a long story"):
            pass

    with pytest.raises(expected):
        asyncio.run(model.ainvoke("hi") if fault != "mid-stream-error" else run())
