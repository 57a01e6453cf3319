"""Privacy by default for the LangChain model: personal data refused, policies for session and metadata too,
and only the id as sent reaching the wire, callbacks, tracer runs, logs, errors and usage records."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from langchain_core.load import dumpd

from openrouter_attribution import ConfigurationError, UsageLedger, UserIdError, UserIdPolicy, user_context
from tests.wire.capture import LangChainRecorder, RunRecorder, as_text

HASH_KEY = "privacy-test-key-0123456789abcdef"
RAW_EMAIL = "jane.doe@example.com"
RAW_PHONE = "+44 20 7946 0958"
RAW_META = "ann.smith@example.org"
RAW_VALUES = (RAW_EMAIL, RAW_PHONE, RAW_META, "jane.doe", "7946 0958", "ann.smith")


def _assert_refusal(err: UserIdError, rule: str, field: str) -> None:
    message = str(err)
    assert err.rule == rule
    assert repr(rule) in message
    assert field in message
    assert "UserIdPolicy(pii='hash'" in message  # the way to pseudonymise
    assert "UserIdPolicy(pii='allow')" in message  # the way to opt out
    for raw in RAW_VALUES:
        assert raw not in message
        assert raw not in repr(err)


# -- no policy: personal data is refused, before anything is sent ----------------------------------------

USER_SOURCES = {
    "call": lambda model: model.invoke("hi", user=RAW_EMAIL),
    "bind": lambda model: model.bind(user=RAW_EMAIL).invoke("hi"),
    "stream": lambda model: list(model.stream("hi", user=RAW_EMAIL)),
    "astream": lambda model: asyncio.run(_adrain(model.astream("hi", user=RAW_EMAIL))),
    "ainvoke": lambda model: asyncio.run(model.ainvoke("hi", user=RAW_EMAIL)),
    "configurable": lambda model: model.invoke("hi", config={"configurable": {"user_id": RAW_EMAIL}}),
    "run-metadata": lambda model: model.invoke("hi", config={"metadata": {"langfuse_user_id": RAW_EMAIL}}),
    "user_context": lambda model: _in_context(model, user=RAW_EMAIL),
}


async def _adrain(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def _in_context(model: Any, **fields: Any) -> Any:
    user = fields.pop("user", None)
    with user_context(user, **fields):
        return model.invoke("hi")


@pytest.mark.parametrize("source", USER_SOURCES)
def test_personal_data_as_user_is_refused_by_default(fake_openrouter, make_chat, source):
    with pytest.raises(UserIdError) as info:
        USER_SOURCES[source](make_chat())
    _assert_refusal(info.value, "email", "`user`")
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    "call",
    [
        lambda model: model.invoke("hi", user="app_1", session_id=RAW_PHONE),
        lambda model: model.invoke("hi", config={"configurable": {"user_id": "app_1", "session_id": RAW_PHONE}}),
        lambda model: model.invoke("hi", config={"configurable": {"user_id": "app_1", "thread_id": RAW_PHONE}}),
        lambda model: _in_context(model, user="app_1", session_id=RAW_PHONE),
    ],
    ids=["call", "configurable", "langgraph-thread", "user_context"],
)
def test_personal_data_as_session_id_is_refused_by_default(fake_openrouter, make_chat, call):
    with pytest.raises(UserIdError) as info:
        call(make_chat())
    _assert_refusal(info.value, "phone", "`session_id`")
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    "call",
    [
        lambda model: model.invoke("hi", user="app_1", openrouter_metadata={"plan": "pro", "contact": RAW_META}),
        lambda model: _in_context(model, user="app_1", metadata={"contact": RAW_META}),
    ],
    ids=["call", "user_context"],
)
def test_personal_data_in_metadata_values_is_refused_by_default(fake_openrouter, make_chat, call):
    with pytest.raises(UserIdError) as info:
        call(make_chat())
    _assert_refusal(info.value, "email", "openrouter_metadata['contact']")
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("user", RAW_EMAIL, "email"),
        ("session_id", RAW_PHONE, "phone"),
        ("openrouter_metadata", {"contact": RAW_META}, "email"),
    ],
)
def test_model_defaults_with_personal_data_fail_at_construction(fake_openrouter, make_chat, field, value, rule):
    with pytest.raises(ConfigurationError) as info:
        make_chat(**{field: value})
    assert isinstance(info.value.__cause__, UserIdError)
    assert info.value.__cause__.rule == rule
    for raw in RAW_VALUES:
        assert raw not in str(info.value)


def test_ordinary_ids_pass_unchanged_by_default(fake_openrouter, make_chat):
    model = make_chat()
    model.invoke("hi", user="app_42", session_id="chat-7", openrouter_metadata={"plan": "pro", "day": "2024-01-15"})
    model.invoke("hi", config={"configurable": {"user_id": "42", "thread_id": "6f1c1c1e-8f3a-4e9b-9a43-1d2b3c4d5e6f"}})
    first, second = (request.body for request in fake_openrouter.chat_requests)
    assert (first["user"], first["session_id"], first["metadata"]) == (
        "app_42", "chat-7", {"plan": "pro", "day": "2024-01-15"})  # fmt: skip
    assert (second["user"], second["session_id"]) == ("42", "6f1c1c1e-8f3a-4e9b-9a43-1d2b3c4d5e6f")


def test_allow_sends_personal_data_unchanged_when_asked_to(fake_openrouter, make_chat):
    model = make_chat(user_policy=UserIdPolicy(pii="allow"))
    model.invoke("hi", user=RAW_EMAIL, session_id=RAW_PHONE, openrouter_metadata={"contact": RAW_META})
    body = fake_openrouter.last_request.body
    assert (body["user"], body["session_id"], body["metadata"]) == (RAW_EMAIL, RAW_PHONE, {"contact": RAW_META})


# -- a hash policy: pseudonyms go out, and only they reach observers ------------------------------------

CALLS = {
    "invoke": lambda model, config, **kw: model.invoke("hi", config=config, **kw),
    "ainvoke": lambda model, config, **kw: asyncio.run(model.ainvoke("hi", config=config, **kw)),
    "stream": lambda model, config, **kw: list(model.stream("hi", config=config, **kw)),
    "astream": lambda model, config, **kw: asyncio.run(_adrain(model.astream("hi", config=config, **kw))),
    "batch": lambda model, config, **kw: model.batch(["hi"], config=config, **kw),
    "bind": lambda model, config, **kw: model.bind(**kw).invoke("hi", config=config),
}


@pytest.mark.parametrize("style", CALLS)
def test_hash_policy_sends_pseudonyms_and_only_they_are_observed(fake_openrouter, make_chat, tmp_path, caplog, style):
    caplog.set_level(logging.DEBUG)
    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False, prefix="app_")
    ledger = UsageLedger(tmp_path / "usage.db")
    model = make_chat(user_policy=policy, ledger=ledger)
    callbacks, tracer = LangChainRecorder(), RunRecorder()
    config = {"callbacks": [callbacks, tracer], "tags": ["privacy"]}
    answer = CALLS[style](
        model, config, user=RAW_EMAIL, session_id=RAW_PHONE, openrouter_metadata={"plan": "pro", "contact": RAW_META}
    )
    ledger.flush()
    (request,) = fake_openrouter.chat_requests
    sent_user, sent_session = policy.apply(RAW_EMAIL), policy.apply_session(RAW_PHONE)
    assert request.body["user"] == sent_user
    assert sent_user.startswith("app_h_")
    assert request.body["session_id"] == sent_session
    assert sent_session.startswith("h_")
    assert request.body["metadata"]["plan"] == "pro"
    assert request.body["metadata"]["contact"].startswith("h_")
    records = [record._asdict() for record in ledger.records()]
    assert [(r["user"], r["session_id"]) for r in records] == [(sent_user, sent_session)]
    observed = {
        "request": request.raw_body.decode() + as_text(dict(request.headers)),
        "callbacks": callbacks.text(),
        "tracer runs": tracer.text(),
        "logs": caplog.text,
        "ledger": as_text(records),
        "answer": as_text(answer if isinstance(answer, list) else [answer]),
    }
    assert sent_user in observed["callbacks"]  # the recorders did see the attribution, as sent
    assert sent_user in observed["tracer runs"]
    for where, text in observed.items():
        for raw in RAW_VALUES:
            assert raw not in text, f"{raw!r} reached the {where}"
    ledger.close()


def test_user_context_ids_are_pseudonymised_too(fake_openrouter, make_chat):
    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)
    tracer = RunRecorder()
    with user_context(RAW_EMAIL, session_id=RAW_PHONE):
        make_chat(user_policy=policy).invoke("hi", config={"callbacks": [tracer]})
    body = fake_openrouter.last_request.body
    assert (body["user"], body["session_id"]) == (policy.apply(RAW_EMAIL), policy.apply_session(RAW_PHONE))
    for raw in RAW_VALUES:
        assert raw not in tracer.text()


def test_model_defaults_are_kept_as_sent(fake_openrouter, make_chat):
    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)
    model = make_chat(
        user_policy=policy, user=RAW_EMAIL, session_id=RAW_PHONE, openrouter_metadata={"contact": RAW_META}
    )
    assert model.user == policy.apply(RAW_EMAIL)
    assert model.session_id == policy.apply_session(RAW_PHONE)
    tracer = RunRecorder()
    model.invoke("hi", config={"callbacks": [tracer]})
    body = fake_openrouter.last_request.body
    assert (body["user"], body["session_id"]) == (model.user, model.session_id)
    texts = [repr(model), str(model), model.model_dump_json(), json.dumps(dumpd(model), default=repr), tracer.text()]
    for text in texts:
        for raw in RAW_VALUES:
            assert raw not in text


def test_transform_runs_once_per_call(fake_openrouter, make_chat):
    seen: list[str] = []

    def to_billing_id(raw: str) -> str:
        seen.append(raw)
        return f"billing-{raw}"

    model = make_chat(user_policy=UserIdPolicy(transform=to_billing_id), user="acct-1")
    model.invoke("hi")
    model.invoke("hi", user="acct-2")
    assert [r.body["user"] for r in fake_openrouter.chat_requests] == ["billing-acct-1", "billing-acct-2"]
    assert seen == ["acct-1", "acct-2"]  # never applied to its own output


def test_session_pseudonyms_never_equal_user_pseudonyms(fake_openrouter, make_chat):
    policy = UserIdPolicy(hash_key=HASH_KEY)  # hash_all: every id is pseudonymised
    make_chat(user_policy=policy).invoke("hi", user="42", session_id="42")
    body = fake_openrouter.last_request.body
    assert body["user"].startswith("h_")
    assert body["session_id"].startswith("h_")
    assert body["user"] != body["session_id"]
    assert policy.apply_session(body["session_id"]) == body["session_id"]  # idempotent


def test_a_raw_id_in_configurable_reaches_no_tracer_through_a_chain(fake_openrouter, make_chat):
    from langchain_core.prompts import ChatPromptTemplate

    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | make_chat(user_policy=policy)
    tracer, callbacks = RunRecorder(), LangChainRecorder()
    config = {"configurable": {"user_id": RAW_EMAIL, "session_id": RAW_PHONE}, "callbacks": [tracer, callbacks]}
    chain.invoke({"question": "hi"}, config=config)
    assert fake_openrouter.last_request.body["user"] == policy.apply(RAW_EMAIL)
    for text in (tracer.text(), callbacks.text()):
        for raw in RAW_VALUES:
            assert raw not in text


def test_generate_called_directly_is_observed_as_sent(fake_openrouter, make_chat):
    from langchain_core.messages import HumanMessage

    policy = UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)
    callbacks = LangChainRecorder()
    make_chat(user_policy=policy).generate([[HumanMessage("hi")]], callbacks=[callbacks], user=RAW_EMAIL)
    assert fake_openrouter.last_request.body["user"] == policy.apply(RAW_EMAIL)
    assert RAW_EMAIL not in callbacks.text()
