"""Identity policy and enforcement for the LlamaIndex LLM, on the wire: every call path sends the pseudonym."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from llama_index.core.instrumentation.dispatcher import instrument_tags

from openrouter_attribution import MissingUserError, MissingUserWarning, UserIdError, UserIdPolicy, user_context
from tests.wire.llama_index_helpers import CALL_STYLES, make_llm

HASH_KEY = "llama-hash-key-0123456789abcdef"


@pytest.mark.parametrize("style", sorted(CALL_STYLES))
@pytest.mark.parametrize("source", ["kwarg", "user_context", "instrument_tags", "model_default"])
def test_policy_transforms_the_user_on_every_call_path(fake_openrouter, style, source):
    policy = UserIdPolicy(prefix="app_", hash_key=HASH_KEY)
    llm = make_llm(fake_openrouter, user_policy=policy, **({"user": "acct-9"} if source == "model_default" else {}))
    if source == "kwarg":
        CALL_STYLES[style](llm, user="acct-9")
    elif source == "user_context":
        with user_context("acct-9"):
            CALL_STYLES[style](llm)
    elif source == "instrument_tags":
        with instrument_tags({"user_id": "acct-9"}):
            CALL_STYLES[style](llm)
    else:
        CALL_STYLES[style](llm)
    (request,) = fake_openrouter.chat_requests
    assert request.body["user"] == policy.apply("acct-9")
    assert "acct-9" not in json.dumps(request.body)


def test_personal_data_is_rejected_before_sending(fake_openrouter):
    with pytest.raises(UserIdError) as info:
        CALL_STYLES["chat"](make_llm(fake_openrouter, user_policy=UserIdPolicy()), user="ann@example.org")
    assert "ann@example.org" not in str(info.value)
    assert fake_openrouter.chat_requests == []


@pytest.mark.parametrize("style", ["chat", "stream_chat", "acomplete"])
def test_policy_require_user_sends_nothing(fake_openrouter, style):
    llm = make_llm(fake_openrouter, user_policy=UserIdPolicy(require_user=True))
    with pytest.raises(MissingUserError) as info:
        CALL_STYLES[style](llm)
    assert "instrument_tags" in str(info.value)
    assert fake_openrouter.chat_requests == []


@pytest.mark.usefixtures("fresh_call_sites")
@pytest.mark.parametrize("style", ["chat", "astream_chat", "stream_complete"])
def test_warn_mode_warns_once_and_sends(fake_openrouter, style):
    llm = make_llm(fake_openrouter, require_user="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            CALL_STYLES[style](llm)
    caught = [w for w in caught if issubclass(w.category, MissingUserWarning)]
    assert len(caught) == 1
    assert "instrument_tags" in str(caught[0].message)
    assert len(fake_openrouter.chat_requests) == 2


def test_keys_never_leak(fake_openrouter, caplog):
    caplog.set_level(logging.DEBUG)
    llm = make_llm(fake_openrouter, user_policy=UserIdPolicy(prefix="app_", hash_key=HASH_KEY))
    CALL_STYLES["chat"](llm, user="acct-raw-42")
    texts = [repr(llm), str(llm), llm.to_json(), json.dumps(llm.to_dict(), default=str), caplog.text]
    for text in texts:
        assert HASH_KEY not in text
        assert fake_openrouter.api_key not in text
        assert "acct-raw-42" not in text
