"""Every user source puts the right `user` and `session_id` on the wire, for every call style."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from openrouter_attribution import user_context
from tests.wire.conftest import sent


class Answer(BaseModel):
    """A short answer."""

    text: str


def _weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


# Each call style takes (model, kwargs, config) and makes exactly one request.
def _invoke(m, kw, cfg):
    return m.invoke("hi", config=cfg, **kw)


def _ainvoke(m, kw, cfg):
    return asyncio.run(m.ainvoke("hi", config=cfg, **kw))


def _stream(m, kw, cfg):
    return list(m.stream("hi", config=cfg, **kw))


def _astream(m, kw, cfg):
    async def run():
        return [chunk async for chunk in m.astream("hi", config=cfg, **kw)]

    return asyncio.run(run())


def _batch(m, kw, cfg):
    return m.batch(["hi"], config=cfg, **kw)


def _abatch(m, kw, cfg):
    return asyncio.run(m.abatch(["hi"], config=cfg, **kw))


def _astream_events(m, kw, cfg):
    async def run():
        return [event async for event in m.astream_events("hi", config=cfg, version="v2", **kw)]

    return asyncio.run(run())


def _tools(m, kw, cfg):
    return m.bind_tools([_weather], tool_choice="any").invoke("weather in 'Paris'", config=cfg, **kw)


def _structured(m, kw, cfg):
    return m.with_structured_output(Answer, **kw).invoke("say hi", config=cfg)


def _structured_json_schema(m, kw, cfg):
    return m.with_structured_output(Answer, method="json_schema", **kw).invoke("say hi", config=cfg)


CALL_STYLES = {
    "invoke": _invoke,
    "ainvoke": _ainvoke,
    "stream": _stream,
    "astream": _astream,
    "batch": _batch,
    "abatch": _abatch,
    "astream_events": _astream_events,
    "bind_tools": _tools,
    "structured": _structured,
    "structured_json_schema": _structured_json_schema,
}

# Each source: (model kwargs, call kwargs, config, user_context kwargs) -> expected (user, session_id)
SOURCES: dict[str, tuple[dict, dict, dict | None, dict | None, tuple[str, str | None]]] = {
    "call_kwarg": ({}, {"user": "u-kw", "session_id": "s-kw"}, None, None, ("u-kw", "s-kw")),
    "configurable": (
        {}, {}, {"configurable": {"user_id": "u-conf", "session_id": "s-conf"}}, None, ("u-conf", "s-conf"),
    ),
    "metadata": ({}, {}, {"metadata": {"user_id": "u-meta", "session_id": "s-meta"}}, None, ("u-meta", "s-meta")),
    "langfuse_metadata": (
        {}, {}, {"metadata": {"langfuse_user_id": "u-lf", "langfuse_session_id": "s-lf"}}, None, ("u-lf", "s-lf"),
    ),
    "user_context": ({}, {}, None, {"user": "u-ctx", "session_id": "s-ctx"}, ("u-ctx", "s-ctx")),
    "model_default": ({"user": "u-default", "session_id": "s-default"}, {}, None, None, ("u-default", "s-default")),
    "thread_id": ({"user": "u-default"}, {}, {"configurable": {"thread_id": "t-1"}}, None, ("u-default", "t-1")),
    "custom_keys": (
        {"user_id_key": "account", "session_id_key": "conversation"}, {},
        {"configurable": {"account": "u-custom", "conversation": "c-1"}}, None, ("u-custom", "c-1"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("style", CALL_STYLES)
@pytest.mark.parametrize("source", SOURCES)
def test_user_and_session_on_the_wire(fake_openrouter, make_chat, style, source):
    model_kw, call_kw, config, context_kw, expected = SOURCES[source]
    model = make_chat(**model_kw)
    if context_kw is not None:
        with user_context(**context_kw):
            CALL_STYLES[style](model, call_kw, config)
    else:
        CALL_STYLES[style](model, call_kw, config)
    assert len(fake_openrouter.chat_requests) == 1
    assert (sent(fake_openrouter, "user")[0], sent(fake_openrouter, "session_id")[0]) == expected


@pytest.mark.parametrize(
    ("call_kw", "config", "context_user", "expected"),
    [
        ({"user": "explicit"}, {"configurable": {"user_id": "conf"}}, "ctx", "explicit"),
        ({}, {"configurable": {"user_id": "conf"}, "metadata": {"user_id": "meta"}}, "ctx", "conf"),
        ({}, {"metadata": {"user_id": "meta", "langfuse_user_id": "lf"}}, "ctx", "meta"),
        ({}, {"metadata": {"langfuse_user_id": "lf"}}, "ctx", "lf"),
        ({}, None, "ctx", "ctx"),
        ({}, None, None, "model-default"),
    ],
)
def test_resolution_order(fake_openrouter, make_chat, call_kw, config, context_user, expected):
    model = make_chat(user="model-default")
    with user_context(context_user):
        model.invoke("hi", config=config, **call_kw)
    assert sent(fake_openrouter, "user") == [expected]


def test_bound_user_wins_over_config(fake_openrouter, make_chat):
    model = make_chat().bind(user="bound")
    model.invoke("hi", config={"configurable": {"user_id": "conf"}})
    assert sent(fake_openrouter, "user") == ["bound"]


def test_no_user_anywhere_sends_no_user_field(fake_openrouter, make_chat):
    make_chat().invoke("hi")
    body: dict[str, Any] = fake_openrouter.chat_requests[0].body
    assert "user" not in body
    assert "session_id" not in body


def test_trace_and_metadata_from_call_and_model(fake_openrouter, make_chat):
    model = make_chat(openrouter_metadata={"tier": "pro"}, trace={"trace_name": "checkout"})
    model.invoke("hi", user="u1", openrouter_metadata={"feature": "faq"})
    body = fake_openrouter.chat_requests[0].body
    assert body["metadata"] == {"feature": "faq"}
    assert body["trace"]["trace_name"] == "checkout"
