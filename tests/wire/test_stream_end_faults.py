"""Answers cut short, error objects in a 200 body and empty 200 bodies raise, in both frameworks and every call mode.

Each fault is injected by the local server (``X-Fake-Fault``); each call mode must raise the typed
error after delivering what did arrive, and the ledger must record the same outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage

from openrouter_attribution import UsageLedger, errors
from tests.wire.llama_index_helpers import make_llm

PROMPT = "Tell me about the weather in Paris today"
MESSAGES = [ChatMessage(role="user", content=PROMPT)]


def _lc_stream(model: Any, received: list[str]) -> None:
    for chunk in model.stream(PROMPT, user="app_1"):
        received.append(chunk.content)


def _lc_astream(model: Any, received: list[str]) -> None:
    async def run() -> None:
        async for chunk in model.astream(PROMPT, user="app_1"):
            received.append(chunk.content)

    asyncio.run(run())


def _li_stream(method: str) -> Callable[[Any, list[str]], None]:
    def run(llm: Any, received: list[str]) -> None:
        call = getattr(llm, method)
        for response in call(MESSAGES if "chat" in method else PROMPT, user="app_1"):
            received.append(response.delta or "")

    return run


def _li_astream(method: str) -> Callable[[Any, list[str]], None]:
    def run(llm: Any, received: list[str]) -> None:
        async def consume() -> None:
            call = getattr(llm, method)
            async for response in await call(MESSAGES if "chat" in method else PROMPT, user="app_1"):
                received.append(response.delta or "")

        asyncio.run(consume())

    return run


# (framework, mode) -> (build the model, run the call appending received text, whether it streams)
MODES: dict[tuple[str, str], tuple[str, Callable[[Any, list[str]], None], bool]] = {
    ("langchain", "invoke"): ("langchain", lambda m, r: r.append(m.invoke(PROMPT, user="app_1").content), False),
    ("langchain", "ainvoke"): ("langchain", lambda m, r: r.append(asyncio.run(m.ainvoke(PROMPT, user="app_1")).content),
                               False),
    ("langchain", "stream"): ("langchain", _lc_stream, True),
    ("langchain", "astream"): ("langchain", _lc_astream, True),
    ("llama_index", "chat"): ("llama_index", lambda m, r: r.append(m.chat(MESSAGES, user="app_1").message.content),
                              False),
    ("llama_index", "achat"): ("llama_index", lambda m, r: r.append(
        asyncio.run(m.achat(MESSAGES, user="app_1")).message.content), False),
    ("llama_index", "complete"): ("llama_index", lambda m, r: r.append(m.complete(PROMPT, user="app_1").text), False),
    ("llama_index", "acomplete"): ("llama_index", lambda m, r: r.append(
        asyncio.run(m.acomplete(PROMPT, user="app_1")).text), False),
    ("llama_index", "stream_chat"): ("llama_index", _li_stream("stream_chat"), True),
    ("llama_index", "astream_chat"): ("llama_index", _li_astream("astream_chat"), True),
    ("llama_index", "stream_complete"): ("llama_index", _li_stream("stream_complete"), True),
    ("llama_index", "astream_complete"): ("llama_index", _li_astream("astream_complete"), True),
}  # fmt: skip
MODE_IDS = [f"{framework}-{mode}" for framework, mode in MODES]


def _model(framework: str, server: Any, make_chat: Any, fault: str, ledger: Any) -> Any:
    headers = {"X-Fake-Fault": fault}
    if framework == "langchain":
        return make_chat(default_headers=headers, ledger=ledger)
    return make_llm(server, default_headers=headers, ledger=ledger)


Outcome = tuple[pytest.ExceptionInfo[BaseException], list[str], list[Any]]


def _run(
    key: tuple[str, str], fake_openrouter: Any, make_chat: Any, fault: str, tmp_path: Any, expected: type[BaseException]
) -> Outcome:
    framework, call, _ = MODES[key]
    ledger = UsageLedger(tmp_path / "usage.db")
    model = _model(framework, fake_openrouter, make_chat, fault, ledger)
    received: list[str] = []
    with pytest.raises(expected) as info:
        call(model, received)
    ledger.flush()
    records = list(ledger.records())
    ledger.close()
    return info, received, records


@pytest.mark.parametrize("key", list(MODES), ids=MODE_IDS)
def test_truncated_answer_raises_after_what_arrived(fake_openrouter, make_chat, tmp_path, key):
    streams = MODES[key][2]
    expected = errors.TruncatedStreamError if streams else errors.InvalidResponseError
    info, received, records = _run(key, fake_openrouter, make_chat, "truncated-stream", tmp_path, expected)
    err = info.value
    (record,) = records
    assert record.outcome == type(err).__name__
    assert len(fake_openrouter.chat_requests) == 1
    if streams:
        # The two content chunks that arrived were delivered before the error, and the error says so.
        assert "".join(received).startswith("[openai/gpt-4o-mini] Reply to:")
        assert err.in_stream
        assert "no finish_reason" in str(err)
        assert "[DONE]" in str(err)
        assert err.generation_id == record.generation_id is not None
    else:
        assert not isinstance(err, errors.TruncatedStreamError)
        assert received == []


@pytest.mark.parametrize("key", list(MODES), ids=MODE_IDS)
def test_error_object_in_a_200_body_raises_the_mapped_error(fake_openrouter, make_chat, tmp_path, key):
    info, received, records = _run(
        key, fake_openrouter, make_chat, "error-body", tmp_path, errors.ProviderUnavailableError
    )
    err = info.value
    assert err.code == 502
    assert err.status_code is None  # the HTTP status was 200
    assert err.message == "Provider returned error"
    assert err.metadata["provider_name"] == "OpenAI"
    assert received == []
    assert [r.outcome for r in records] == ["ProviderUnavailableError"]


@pytest.mark.parametrize("key", list(MODES), ids=MODE_IDS)
def test_empty_200_body_raises_invalid_response(fake_openrouter, make_chat, tmp_path, key):
    info, received, records = _run(key, fake_openrouter, make_chat, "empty-body", tmp_path, errors.InvalidResponseError)
    err = info.value
    assert not isinstance(err, errors.TruncatedStreamError)
    assert "empty body" in str(err)
    assert received == []
    assert [r.outcome for r in records] == ["InvalidResponseError"]


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_a_complete_stream_is_not_flagged(fake_openrouter, make_chat, tmp_path, framework):
    key = (framework, "stream" if framework == "langchain" else "stream_chat")
    _, call, _ = MODES[key]
    ledger = UsageLedger(tmp_path / "usage.db")
    model = make_chat(ledger=ledger) if framework == "langchain" else make_llm(fake_openrouter, ledger=ledger)
    received: list[str] = []
    call(model, received)
    ledger.flush()
    assert [r.outcome for r in ledger.records()] == ["ok"]
    assert "".join(received) == f"[openai/gpt-4o-mini] Reply to: {PROMPT}"
    ledger.close()


@pytest.mark.parametrize(("fault", "expected"), [("truncated-stream", errors.TruncatedStreamError),
                                                 ("error-body", errors.ProviderUnavailableError),
                                                 ("empty-body", errors.InvalidResponseError)])  # fmt: skip
def test_the_faults_can_be_queued_or_named_by_model_id(fake_openrouter, make_chat, fault, expected):
    fake_openrouter.inject_fault(fault)
    with pytest.raises(expected):
        list(make_chat().stream(PROMPT))
    with pytest.raises(expected):
        list(make_chat(model=f"fake/fault-{fault}").stream(PROMPT))
    list(make_chat().stream(PROMPT))  # the queue is empty again
    assert len(fake_openrouter.chat_requests) == 3
