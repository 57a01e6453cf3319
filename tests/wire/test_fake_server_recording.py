"""Every request is recorded: method, path, query, case-insensitive headers, raw and parsed body, time."""

from __future__ import annotations

import http.client
import json
import threading
import time

import openai
import pytest

from openrouter_attribution.testing import HeaderMap


def test_chat_request_is_recorded_as_sent(fake_openrouter):
    before = time.time()
    with openai.OpenAI(
        base_url=fake_openrouter.base_url,
        api_key=fake_openrouter.api_key,
        max_retries=0,
        default_headers={"HTTP-Referer": "https://app.example", "X-Title": "Demo"},
    ) as client:
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "Zoë says hi"}],
            extra_body={
                "user": "app_1",
                "session_id": "s1",
                "trace": {"trace_id": "t1"},
                "metadata": {"k": "v"},
            },
        )
    [record] = fake_openrouter.requests
    assert fake_openrouter.chat_requests == [record]
    assert fake_openrouter.last_request is record
    assert (record.method, record.path, record.query) == ("POST", "/api/v1/chat/completions", {})
    assert record.is_chat
    assert record.headers["authorization"] == "Bearer sk-or-fake-key"
    assert record.headers["x-title"] == record.headers["X-TITLE"] == "Demo"
    assert record.headers["http-referer"] == "https://app.example"
    assert "content-type" in record.headers
    assert json.loads(record.raw_body) == record.body
    assert record.body["user"] == "app_1"
    assert record.body["session_id"] == "s1"
    assert record.body["trace"] == {"trace_id": "t1"}
    assert record.body["metadata"] == {"k": "v"}
    assert record.body["messages"][0]["content"] == "Zoë says hi"
    assert before <= record.time <= time.time()


def test_rejected_and_non_chat_requests_are_recorded(fake_openrouter):
    conn = http.client.HTTPConnection("127.0.0.1", fake_openrouter.port, timeout=5)
    conn.request("POST", "/api/v1/chat/completions", b"{broken", {"Authorization": "Bearer nope"})
    conn.getresponse().read()
    conn.request("GET", "/api/v1/generation?id=gen-x&id=gen-y&extra=1", headers={"X-Custom": "a"})
    conn.getresponse().read()
    conn.close()
    broken, generation = fake_openrouter.requests
    assert broken.raw_body == b"{broken"
    assert broken.body is None
    assert broken.is_chat
    assert (generation.method, generation.path) == ("GET", "/api/v1/generation")
    assert generation.query == {"id": "gen-y", "extra": "1"}
    assert generation.raw_body == b""
    assert generation.body is None
    assert not generation.is_chat
    assert fake_openrouter.chat_requests == [broken]


def test_chunked_request_bodies_are_read(fake_openrouter):
    body = json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "chunked"}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", fake_openrouter.port, timeout=5)
    conn.request(
        "POST",
        "/api/v1/chat/completions",
        body=iter([body[:10], body[10:]]),
        encode_chunked=True,
        headers={"Authorization": f"Bearer {fake_openrouter.api_key}", "Transfer-Encoding": "chunked"},
    )
    assert conn.getresponse().status == 200
    conn.close()
    assert fake_openrouter.last_request.raw_body == body


def test_last_request_before_any_request(fake_openrouter):
    with pytest.raises(LookupError):
        _ = fake_openrouter.last_request


def test_wait_for_requests(fake_openrouter):
    def send() -> None:
        with openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0) as client:
            client.models.list()
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])

    worker = threading.Thread(target=send)
    worker.start()
    assert len(fake_openrouter.wait_for_requests(1, chat_only=True, timeout=5)) == 1
    worker.join()
    assert len(fake_openrouter.wait_for_requests(2)) == 2
    with pytest.raises(TimeoutError):
        fake_openrouter.wait_for_requests(3, timeout=0.05)


def test_header_map():
    headers = HeaderMap([("X-Title", "a"), ("Accept", "b"), ("accept", "c")])
    assert headers["x-title"] == "a"
    assert headers["ACCEPT"] == "b, c"
    assert list(headers) == ["X-Title", "Accept"]
    assert len(headers) == 2
    assert "X-TITLE" in headers
    assert 3 not in headers
    assert headers.get("missing") is None
