"""A misspelled option or a value OpenRouter refuses is an error before anything is sent, never dropped."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from openrouter_attribution import ConfigurationError
from openrouter_attribution.langchain import ChatOpenRouter, OpenRouterEmbeddings
from openrouter_attribution.llama_index import OpenRouter, OpenRouterEmbedding

MODEL = "openai/gpt-4o-mini"
MODELS = [ChatOpenRouter, OpenRouter, OpenRouterEmbeddings, OpenRouterEmbedding]
CHAT_MODELS = [ChatOpenRouter, OpenRouter]


def _connect(server: Any) -> dict[str, Any]:
    return {"base_url": server.base_url, "api_key": server.api_key, "require_user": False}


@pytest.mark.parametrize(
    ("cls", "typo", "meant"),
    [(ChatOpenRouter, "temprature", "temperature"), (ChatOpenRouter, "max_tokns", "max_tokens"),
     (OpenRouter, "temprature", "temperature"), (OpenRouter, "max_tokns", "max_tokens"),
     (OpenRouterEmbeddings, "dimension", "dimensions"), (OpenRouterEmbedding, "dimension", "dimensions"),
     (ChatOpenRouter, "sesion_id", "session_id"), (OpenRouter, "requre_user", "require_user")],
)  # fmt: skip
def test_a_misspelled_option_is_refused_with_the_closest_field(fake_openrouter, cls, typo, meant):
    with pytest.raises(ConfigurationError) as info:
        cls(model=MODEL, **_connect(fake_openrouter), **{typo: 1})
    message = str(info.value)
    assert f"{typo!r} (did you mean {meant!r}?)" in message
    assert "extra_body" in message  # the escape hatch for fields this library does not know yet
    assert fake_openrouter.requests == []


def test_every_misspelled_option_is_named(fake_openrouter):
    with pytest.raises(ConfigurationError) as info:
        ChatOpenRouter(model=MODEL, **_connect(fake_openrouter), temprature=0.2, max_tokns=5)
    assert "'max_tokns' (did you mean 'max_tokens'?), 'temprature' (did you mean 'temperature'?)" in str(info.value)


def test_a_misspelled_option_never_shows_its_value(fake_openrouter):
    with pytest.raises(ConfigurationError) as info:
        ChatOpenRouter(model=MODEL, **_connect(fake_openrouter), usr="alice@example.com")
    assert "alice@example.com" not in str(info.value)


@pytest.mark.parametrize("cls", CHAT_MODELS)
def test_extra_body_still_carries_fields_this_library_does_not_know(fake_openrouter, cls):
    model = cls(model=MODEL, **_connect(fake_openrouter), extra_body={"verbosity": "low"})
    if cls is ChatOpenRouter:
        model.invoke("hi")
    else:
        model.chat([ChatMessage(role="user", content="hi")])
    assert fake_openrouter.chat_requests[-1].body["verbosity"] == "low"


OUT_OF_RANGE = [
    ("temperature", 7, "0 to 2"), ("temperature", -0.5, "0 to 2"), ("top_p", 1.5, "0 to 1"),
    ("top_k", -1, "0 or more"), ("min_p", 2, "0 to 1"), ("top_a", -1, "0 to 1"),
    ("frequency_penalty", 2.5, "-2 to 2"), ("presence_penalty", -3, "-2 to 2"),
    ("repetition_penalty", 3, "0 to 2"), ("max_tokens", 0, "1 or more"), ("top_logprobs", 21, "0 to 20"),
]  # fmt: skip


@pytest.mark.parametrize("cls", CHAT_MODELS)
@pytest.mark.parametrize(("name", "value", "accepted"), OUT_OF_RANGE)
def test_out_of_range_settings_are_refused_at_construction(fake_openrouter, cls, name, value, accepted):
    with pytest.raises(ConfigurationError, match=f"OpenRouter accepts {accepted}") as info:
        cls(model=MODEL, **_connect(fake_openrouter), **{name: value})
    assert name in str(info.value)
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(("name", "value", "accepted"), OUT_OF_RANGE)
def test_out_of_range_call_keywords_are_refused_before_sending_langchain(fake_openrouter, name, value, accepted):
    model = ChatOpenRouter(model=MODEL, **_connect(fake_openrouter))
    with pytest.raises(ConfigurationError, match=f"OpenRouter accepts {accepted}"):
        model.invoke("hi", **{name: value})
    with pytest.raises(ConfigurationError, match=f"OpenRouter accepts {accepted}"):
        model.bind(**{name: value}).invoke("hi")
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(("name", "value", "accepted"), OUT_OF_RANGE)
async def test_out_of_range_call_keywords_are_refused_before_sending_llama_index(
    fake_openrouter, name, value, accepted
):
    model = OpenRouter(model=MODEL, **_connect(fake_openrouter))
    messages = [ChatMessage(role="user", content="hi")]
    with pytest.raises(ConfigurationError, match=f"OpenRouter accepts {accepted}"):
        model.chat(messages, **{name: value})
    with pytest.raises(ConfigurationError, match=f"OpenRouter accepts {accepted}"):
        await model.achat(messages, **{name: value})
    assert fake_openrouter.requests == []


@pytest.mark.parametrize("cls", CHAT_MODELS)
def test_the_edges_of_each_range_are_sent(fake_openrouter, cls):
    edges = {"temperature": 2, "top_p": 0, "top_k": 0, "min_p": 1, "top_a": 0, "frequency_penalty": -2,
             "presence_penalty": 2, "repetition_penalty": 0, "max_tokens": 1}  # fmt: skip
    model = cls(model=MODEL, **_connect(fake_openrouter), **edges)
    if cls is ChatOpenRouter:
        model.invoke("hi")
    else:
        model.chat([ChatMessage(role="user", content="hi")])
    body = fake_openrouter.chat_requests[-1].body
    assert {name: body[name] for name in edges} == edges
