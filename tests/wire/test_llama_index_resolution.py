"""Every call style of the LlamaIndex LLM puts the resolved user and session on the wire, from every source."""

from __future__ import annotations

import pytest
from llama_index.core.instrumentation.dispatcher import instrument_tags

from openrouter_attribution import MissingUserError, user_context
from tests.wire.llama_index_helpers import CALL_STYLES, make_llm, sent

STYLES = sorted(CALL_STYLES)


@pytest.fixture(params=STYLES)
def style(request):
    return request.param


def _call(style, llm, **kwargs):
    return CALL_STYLES[style](llm, **kwargs)


def test_explicit_kwargs(fake_openrouter, style):
    llm = make_llm(fake_openrouter, user="u-default", session_id="s-default")
    with user_context("u-ctx", session_id="s-ctx"), instrument_tags({"user_id": "u-tag"}):
        response = _call(style, llm, user="u-explicit", session_id="s-explicit",
                         trace={"trace_id": "t-1"}, openrouter_metadata={"plan": "pro"})  # fmt: skip
    body = fake_openrouter.chat_requests[-1].body
    assert (body["user"], body["session_id"]) == ("u-explicit", "s-explicit")
    assert body["trace"] == {"trace_id": "t-1"}
    assert body["metadata"] == {"plan": "pro"}
    assert response.additional_kwargs["attribution"] == {"user": "u-explicit", "session_id": "s-explicit"}


def test_user_context_beats_tags_and_default(fake_openrouter, style):
    llm = make_llm(fake_openrouter, user="u-default", session_id="s-default")
    with instrument_tags({"user_id": "u-tag", "session_id": "s-tag"}), user_context("u-ctx", session_id="s-ctx"):
        _call(style, llm)
    assert sent(fake_openrouter, "user") == ["u-ctx"]
    assert sent(fake_openrouter, "session_id") == ["s-ctx"]


def test_instrument_tags_beat_default(fake_openrouter, style):
    llm = make_llm(fake_openrouter, user="u-default", session_id="s-default")
    with instrument_tags({"user_id": "u-tag", "session_id": "s-tag", "other": "x"}):
        _call(style, llm)
    assert sent(fake_openrouter, "user") == ["u-tag"]
    assert sent(fake_openrouter, "session_id") == ["s-tag"]


def test_model_default(fake_openrouter, style):
    _call(style, make_llm(fake_openrouter, user="u-default", session_id="s-default"))
    assert sent(fake_openrouter, "user") == ["u-default"]
    assert sent(fake_openrouter, "session_id") == ["s-default"]


def test_fields_resolve_independently(fake_openrouter, style):
    llm = make_llm(fake_openrouter, session_id="s-default")
    with instrument_tags({"user_id": "u-tag"}):
        _call(style, llm)
    body = fake_openrouter.chat_requests[-1].body
    assert (body["user"], body["session_id"]) == ("u-tag", "s-default")


def test_custom_tag_names(fake_openrouter):
    llm = make_llm(fake_openrouter, user_id_tag="customer", session_id_tag="conversation")
    with instrument_tags({"user_id": "ignored", "customer": "c-9", "conversation": "conv-1"}):
        llm.complete("hi")
    body = fake_openrouter.chat_requests[-1].body
    assert (body["user"], body["session_id"]) == ("c-9", "conv-1")


def test_nothing_set_sends_no_attribution(fake_openrouter, style):
    _call(style, make_llm(fake_openrouter))
    body = fake_openrouter.chat_requests[-1].body
    assert not {"user", "session_id", "trace", "metadata"} & set(body)


def test_require_user_raises_before_sending(fake_openrouter, style):
    llm = make_llm(fake_openrouter, require_user=True)
    with pytest.raises(MissingUserError) as info:
        _call(style, llm)
    assert fake_openrouter.chat_requests == []
    assert any("instrument_tags" in place for place in info.value.searched)
    with user_context("u-1"):
        _call(style, llm)
    assert sent(fake_openrouter, "user") == ["u-1"]


def test_no_hidden_defaults(fake_openrouter, style):
    _call(style, make_llm(fake_openrouter))
    body = fake_openrouter.chat_requests[-1].body
    assert set(body) <= {"model", "messages", "stream", "tools"}
    if "with_tools" in style:
        assert body["tools"][0]["function"]["name"] == "add"
    assert ("stream" in body) == ("stream" in style)


def test_set_parameters_are_sent(fake_openrouter, style):
    llm = make_llm(fake_openrouter, temperature=0.2, max_tokens=50, provider={"sort": "price"})
    _call(style, llm, top_p=0.5)
    body = fake_openrouter.chat_requests[-1].body
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.2, 50, 0.5)
    assert body["provider"] == {"sort": "price"}


def test_unknown_call_keyword_is_rejected_before_sending(fake_openrouter):
    from openrouter_attribution import ConfigurationError

    with pytest.raises(ConfigurationError, match="temprature"):
        make_llm(fake_openrouter).chat([], temprature=0.1)
    assert fake_openrouter.chat_requests == []
