"""Every fault the local server injects surfaces from the LlamaIndex LLM as the same typed error as LangChain's."""

from __future__ import annotations

import asyncio

import pytest

from openrouter_attribution import errors
from tests.wire.conftest import STATUS_FAULTS
from tests.wire.llama_index_helpers import CALL_STYLES, MESSAGES, make_llm

STYLES = ["chat", "achat", "stream_chat", "astream_chat", "acomplete", "stream_complete"]


@pytest.mark.parametrize(("fault", "error_type"), STATUS_FAULTS)
@pytest.mark.parametrize("style", STYLES)
def test_http_faults_map_to_typed_errors(fake_openrouter, fault, error_type, style):
    llm = make_llm(fake_openrouter, default_headers={"X-Fake-Fault": fault})
    with pytest.raises(error_type) as info:
        CALL_STYLES[style](llm)
    err = info.value
    assert err.status_code == int(fault)
    assert err.message
    assert not err.in_stream
    if fault == "429":
        assert err.retry_after is not None
    if fault == "403":
        assert err.reasons
        assert err.metadata.get("flagged_input")
    assert len(fake_openrouter.chat_requests) == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_mid_stream_error_raises_after_the_content_so_far(fake_openrouter, use_async):
    llm = make_llm(fake_openrouter, default_headers={"X-Fake-Fault": "mid-stream-error"})
    received = []

    async def consume_async() -> None:
        async for response in await llm.astream_chat(MESSAGES):
            received.append(response)

    def consume() -> None:
        received.extend(llm.stream_chat(MESSAGES))

    with pytest.raises(errors.APIError) as info:
        asyncio.run(consume_async()) if use_async else consume()
    assert info.value.in_stream
    assert received
    assert received[-1].message.content


def test_error_in_a_200_body(fake_openrouter):
    llm = make_llm(fake_openrouter, default_headers={"X-Fake-Fault": "mid-stream-error"})
    with pytest.raises(errors.ProviderUnavailableError):
        llm.chat(MESSAGES)


@pytest.mark.parametrize("style", ["chat", "astream_chat"])
def test_malformed_response(fake_openrouter, style):
    llm = make_llm(fake_openrouter, default_headers={"X-Fake-Fault": "malformed-chunk"})
    with pytest.raises(errors.InvalidResponseError):
        CALL_STYLES[style](llm)


@pytest.mark.parametrize("style", ["achat", "stream_chat", "astream_chat"])
def test_dropped_connection(fake_openrouter, style):
    llm = make_llm(fake_openrouter, default_headers={"X-Fake-Fault": "drop-connection"})
    with pytest.raises(errors.APIConnectionError):
        CALL_STYLES[style](llm)


@pytest.mark.parametrize("style", ["chat", "astream_chat"])
def test_slow_first_byte_times_out(fake_openrouter, style):
    llm = make_llm(
        fake_openrouter, timeout=0.2, default_headers={"X-Fake-Fault": "slow-first-byte", "X-Fake-Delay-Ms": "1500"}
    )
    with pytest.raises(errors.APITimeoutError):
        CALL_STYLES[style](llm)


def test_sdk_retries_honour_retry_after(fake_openrouter):
    fake_openrouter.inject_fault("429", retry_after=0)
    llm = make_llm(fake_openrouter, max_retries=1)
    response = llm.chat(MESSAGES, user="u-retry")
    assert response.message.content
    assert [r.body["user"] for r in fake_openrouter.chat_requests] == ["u-retry", "u-retry"]


def test_no_retries_when_disabled(fake_openrouter):
    fake_openrouter.inject_fault("502")
    with pytest.raises(errors.ProviderUnavailableError):
        make_llm(fake_openrouter, max_retries=0).chat(MESSAGES)
    assert len(fake_openrouter.chat_requests) == 1
