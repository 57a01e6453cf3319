"""OpenRouter's app attribution headers on the wire, for both frameworks; bad values refused at construction."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from openrouter_attribution import ConfigurationError
from tests.wire.llama_index_helpers import MESSAGES, make_llm


def _langchain_calls(make_chat, fake_openrouter, **options: Any) -> None:
    model = make_chat(**options)
    model.invoke("hi")
    list(model.stream("hi"))
    asyncio.run(model.ainvoke("hi"))


def _llama_index_calls(make_chat, fake_openrouter, **options: Any) -> None:
    llm = make_llm(fake_openrouter, **options)
    llm.chat(MESSAGES)
    list(llm.stream_chat(MESSAGES))
    asyncio.run(llm.achat(MESSAGES))


FRAMEWORKS = {"langchain": _langchain_calls, "llama_index": _llama_index_calls}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_app_headers_on_every_call(fake_openrouter, make_chat, framework):
    FRAMEWORKS[framework](
        make_chat, fake_openrouter,
        app_url="https://app.example", app_title="Example App", app_categories=["cli-agent", "programming-app"],
    )  # fmt: skip
    requests = fake_openrouter.chat_requests
    assert len(requests) == 3
    for request in requests:
        assert request.headers["HTTP-Referer"] == "https://app.example"
        assert request.headers["X-OpenRouter-Title"] == "Example App"
        assert request.headers["X-Title"] == "Example App"  # older deployments know only this name
        assert request.headers["X-OpenRouter-Categories"] == "cli-agent,programming-app"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_no_app_headers_unless_set(fake_openrouter, make_chat, framework):
    FRAMEWORKS[framework](make_chat, fake_openrouter, app_categories=[])
    for request in fake_openrouter.chat_requests:
        assert not {"HTTP-Referer", "X-OpenRouter-Title", "X-Title", "X-OpenRouter-Categories"} & set(request.headers)


def test_a_single_category_and_the_maximum_length(fake_openrouter, make_chat):
    make_chat(app_categories=["x" * 30]).invoke("hi")
    assert fake_openrouter.chat_requests[0].headers["X-OpenRouter-Categories"] == "x" * 30


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"app_categories": ["cli-agent", "programming-app", "chat"]}, "has 3 entries; OpenRouter accepts at most 2"),
        ({"app_categories": ["x" * 31]}, "entry 1 has 31 characters; OpenRouter accepts at most 30"),
        ({"app_categories": ["cli-agent", ""]}, "entry 2 is empty or contains a comma"),
        ({"app_categories": ["cli-agent,programming-app"]}, "entry 1 is empty or contains a comma"),
        ({"app_categories": ["caf\u00e9-app"]}, "app_categories can only hold printable ASCII"),
        ({"app_title": "Caf\u00e9 Bot"}, "app_title can only hold printable ASCII"),
        ({"app_title": "App\r\nX-Injected: 1"}, "app_title can only hold printable ASCII"),
        ({"app_url": "https://app.example/\n"}, "app_url can only hold printable ASCII"),
        ({"default_headers": {"X-Team": "na\u00efve"}}, "default_headers['X-Team'] can only hold printable ASCII"),
    ],
)
@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_bad_header_values_refused_at_construction(fake_openrouter, make_chat, framework, options, message):
    build = make_chat if framework == "langchain" else lambda **kw: make_llm(fake_openrouter, **kw)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        build(**options)
    assert fake_openrouter.requests == []
