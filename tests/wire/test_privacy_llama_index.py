"""Privacy by default for the LlamaIndex LLM: personal data refused, and only the id as sent reaching the
wire, instrumentation events, spans, callback payloads, logs and usage records."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
from llama_index.core.instrumentation.dispatcher import instrument_tags

from openrouter_attribution import ConfigurationError, UsageLedger, UserIdError, UserIdPolicy, user_context
from tests.wire.capture import as_text, llama_index_recorder
from tests.wire.llama_index_helpers import CALL_STYLES, make_llm
from tests.wire.test_privacy_langchain import HASH_KEY, RAW_EMAIL, RAW_META, RAW_PHONE, RAW_VALUES, _assert_refusal

STYLES = ["chat", "achat", "stream_chat", "astream_chat", "complete", "acomplete", "stream_complete",
          "astream_complete", "chat_with_tools", "astream_chat_with_tools"]  # fmt: skip


@pytest.mark.parametrize("style", STYLES)
def test_personal_data_as_user_is_refused_by_default(fake_openrouter, style):
    with pytest.raises(UserIdError) as info:
        CALL_STYLES[style](make_llm(fake_openrouter), user=RAW_EMAIL)
    _assert_refusal(info.value, "email", "`user`")
    assert fake_openrouter.requests == []


@pytest.mark.parametrize("source", ["kwarg", "user_context", "instrument_tags"])
def test_personal_data_as_session_id_is_refused_by_default(fake_openrouter, source):
    llm = make_llm(fake_openrouter)

    def call() -> None:
        if source == "kwarg":
            CALL_STYLES["chat"](llm, user="app_1", session_id=RAW_PHONE)
        elif source == "user_context":
            with user_context("app_1", session_id=RAW_PHONE):
                CALL_STYLES["chat"](llm)
        else:
            with instrument_tags({"user_id": "app_1", "session_id": RAW_PHONE}):
                CALL_STYLES["chat"](llm)

    with pytest.raises(UserIdError) as info:
        call()
    _assert_refusal(info.value, "phone", "`session_id`")
    assert fake_openrouter.requests == []


def test_personal_data_in_metadata_values_is_refused_by_default(fake_openrouter):
    with pytest.raises(UserIdError) as info:
        CALL_STYLES["stream_chat"](make_llm(fake_openrouter), user="app_1", openrouter_metadata={"contact": RAW_META})
    _assert_refusal(info.value, "email", "openrouter_metadata['contact']")
    assert fake_openrouter.requests == []


def test_model_default_with_personal_data_fails_at_construction(fake_openrouter):
    with pytest.raises(ConfigurationError) as info:
        make_llm(fake_openrouter, user=RAW_EMAIL)
    assert RAW_EMAIL not in str(info.value)


@pytest.mark.parametrize("style", STYLES)
def test_hash_policy_sends_pseudonyms_and_only_they_are_observed(fake_openrouter, tmp_path, caplog, style):
    caplog.set_level(logging.DEBUG)
    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False, prefix="app_")
    ledger = UsageLedger(tmp_path / "usage.db")
    llm = make_llm(fake_openrouter, user_policy=policy, ledger=ledger)
    with llama_index_recorder(llm) as recorder:
        response = CALL_STYLES[style](
            llm, user=RAW_EMAIL, session_id=RAW_PHONE, openrouter_metadata={"contact": RAW_META}
        )
    ledger.flush()
    (request,) = fake_openrouter.chat_requests
    sent_user, sent_session = policy.apply(RAW_EMAIL), policy.apply_session(RAW_PHONE)
    assert (request.body["user"], request.body["session_id"]) == (sent_user, sent_session)
    assert request.body["metadata"]["contact"].startswith("h_")
    records = [record._asdict() for record in ledger.records()]
    assert [(r["user"], r["session_id"]) for r in records] == [(sent_user, sent_session)]
    observed = {
        "request": request.raw_body.decode() + as_text(dict(request.headers)),
        "instrumentation": recorder.text(),
        "logs": caplog.text,
        "ledger": as_text(records),
        "response": as_text(response.model_dump()),
    }
    assert sent_user in observed["instrumentation"]  # the call's keywords are shown, as sent
    for where, text in observed.items():
        for raw in RAW_VALUES:
            assert raw not in text, f"{raw!r} reached the {where}"
    ledger.close()


def test_model_defaults_are_kept_as_sent(fake_openrouter, monkeypatch):
    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)
    llm = make_llm(fake_openrouter, user_policy=policy, user=RAW_EMAIL, session_id=RAW_PHONE)
    with llama_index_recorder(llm) as recorder:
        CALL_STYLES["chat"](llm)
    body = fake_openrouter.last_request.body
    assert (body["user"], body["session_id"]) == (policy.apply(RAW_EMAIL), policy.apply_session(RAW_PHONE))
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    texts = [repr(llm), llm.to_json(), llm.model_dump_json(), json.dumps(llm.to_dict()), recorder.text(),
             pickle.dumps(llm).decode("latin-1")]  # fmt: skip
    for text in texts:
        for raw in RAW_VALUES:
            assert raw not in text


def test_instrument_tags_ids_are_pseudonymised(fake_openrouter):
    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)
    with instrument_tags({"user_id": RAW_EMAIL}):
        CALL_STYLES["chat"](make_llm(fake_openrouter, user_policy=policy))
    assert fake_openrouter.last_request.body["user"] == policy.apply(RAW_EMAIL)


def test_structured_predict_llm_kwargs_are_observed_as_sent(fake_openrouter):
    from llama_index.core.prompts import PromptTemplate
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)
    llm = make_llm(fake_openrouter, user_policy=policy)
    with llama_index_recorder(llm) as recorder:
        city = llm.structured_predict(City, PromptTemplate("Name the city 'Paris'"), llm_kwargs={"user": RAW_EMAIL})
    assert city.name
    assert fake_openrouter.last_request.body["user"] == policy.apply(RAW_EMAIL)
    assert RAW_EMAIL not in recorder.text()
