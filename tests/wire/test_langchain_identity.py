"""Identity policy and enforcement on the wire: transformed ids, no unattributed calls, no leaked secrets."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
from langchain_core.load import dumpd, dumps

from openrouter_attribution import MissingUserError, MissingUserWarning, UserIdError, UserIdPolicy, user_context
from openrouter_attribution.langchain import ChatOpenRouter
from tests.wire.conftest import MODEL
from tests.wire.test_langchain_resolution import CALL_STYLES

THIS_FILE_LINES = {
    marker: number
    for number, line in enumerate(Path(__file__).read_text().splitlines(), start=1)
    for marker in ("one call site", "another call site")
    if line.endswith(f"# {marker}")
}

HASH_KEY = "hash-key-for-tests-0123456789abcdef"
RAW_EMAIL = "jane.doe@example.com"


@pytest.mark.parametrize("style", CALL_STYLES)
def test_policy_transforms_the_user_on_every_call_path(fake_openrouter, make_chat, style):
    policy = UserIdPolicy(prefix="app_", hash_key=HASH_KEY)
    model = make_chat(user_policy=policy)
    CALL_STYLES[style](model, {}, {"configurable": {"user_id": "account-42"}})
    (request,) = fake_openrouter.chat_requests
    assert request.body["user"] == policy.apply("account-42")
    assert request.body["user"].startswith("app_h_")
    assert "account-42" not in json.dumps(request.body)


def test_prefix_only_policy_is_applied_once(fake_openrouter, make_chat):
    model = make_chat(user_policy=UserIdPolicy(prefix="app_"))
    model.invoke("hi", user="42")
    model.invoke("hi", user="app_42")
    assert [r.body["user"] for r in fake_openrouter.chat_requests] == ["app_42", "app_42"]


def test_pii_rejected_before_sending_without_echoing_it(fake_openrouter, make_chat):
    with pytest.raises(UserIdError) as info:
        make_chat(user_policy=UserIdPolicy()).invoke("hi", user=RAW_EMAIL)
    assert info.value.rule == "email"
    assert RAW_EMAIL not in str(info.value)
    assert fake_openrouter.chat_requests == []


def test_pii_hashed(fake_openrouter, make_chat):
    make_chat(user_policy=UserIdPolicy(pii="hash", hash_key=HASH_KEY, hash_all=False)).invoke("hi", user=RAW_EMAIL)
    sent = fake_openrouter.chat_requests[0].body["user"]
    assert sent.startswith("h_")
    assert "example.com" not in sent


@pytest.mark.parametrize("where", ["model", "policy"])
@pytest.mark.parametrize("streaming", [False, True])
def test_require_user_raises_and_sends_nothing(fake_openrouter, make_chat, where, streaming):
    kwargs = {"require_user": True} if where == "model" else {"user_policy": UserIdPolicy(require_user=True)}
    model = make_chat(**kwargs)
    with pytest.raises(MissingUserError) as info:
        list(model.stream("hi")) if streaming else model.invoke("hi")
    message = str(info.value)
    for place in ("user=", "config['configurable']['user_id']", "config['metadata']['user_id']", "user_context()"):
        assert place in message
    assert fake_openrouter.chat_requests == []


def test_require_user_passes_when_a_user_is_resolved(fake_openrouter, make_chat):
    with user_context("app_1"):
        make_chat(require_user=True).invoke("hi")
    assert fake_openrouter.chat_requests[0].body["user"] == "app_1"


@pytest.mark.usefixtures("fresh_call_sites")
def test_warn_mode_warns_once_per_call_site(fake_openrouter, make_chat):
    model = make_chat(require_user="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            model.invoke("hi")  # one call site
        model.invoke("hi")  # another call site
    caught = [w for w in caught if issubclass(w.category, MissingUserWarning)]
    assert [w.lineno for w in caught] == [THIS_FILE_LINES["one call site"], THIS_FILE_LINES["another call site"]]
    assert all(w.filename == __file__ for w in caught)
    assert "user_context()" in str(caught[0].message)
    assert len(fake_openrouter.chat_requests) == 4


@pytest.mark.usefixtures("fresh_call_sites")
def test_an_error_filter_refuses_every_call_of_a_call_site(fake_openrouter, make_chat):
    model = make_chat(require_user="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingUserWarning)
        for _ in range(3):
            with pytest.raises(MissingUserWarning):
                model.invoke("hi")
    assert fake_openrouter.chat_requests == []


@pytest.mark.usefixtures("fresh_call_sites")
def test_warn_is_the_default_and_false_silences_it(fake_openrouter, make_chat):
    default = ChatOpenRouter(model=MODEL, base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key)
    assert default.require_user == "warn"
    with pytest.warns(MissingUserWarning):
        list(default.stream("hi"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingUserWarning)
        make_chat(require_user=False).invoke("hi")  # a new call site, yet no warning
    assert len(fake_openrouter.chat_requests) == 2


@pytest.mark.usefixtures("fresh_call_sites")
def test_a_policy_that_requires_a_user_wins_over_warn(fake_openrouter, make_chat):
    with pytest.raises(MissingUserError):
        make_chat(require_user="warn", user_policy=UserIdPolicy(require_user=True)).invoke("hi")
    assert fake_openrouter.chat_requests == []


def test_secrets_and_raw_ids_never_leak(fake_openrouter, make_chat, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    policy = UserIdPolicy(prefix="app_", hash_key=HASH_KEY)
    model = make_chat(user_policy=policy)
    model.invoke("hi", user="raw-account-id-777")
    with pytest.raises(UserIdError) as info:
        make_chat(user_policy=UserIdPolicy(prefix="app_")).invoke("hi", user="call me at +1 415 555 0100")
    texts = [repr(model), str(model), repr(policy), dumps(model), json.dumps(dumpd(model), default=str),
             caplog.text, str(info.value), repr(info.value), capsys.readouterr().out]  # fmt: skip
    for text in texts:
        assert HASH_KEY not in text
        assert fake_openrouter.api_key not in text
        assert "raw-account-id-777" not in text
        assert "415 555 0100" not in text


def test_missing_user_message_lists_places_in_resolution_order(fake_openrouter, make_chat):
    with pytest.raises(MissingUserError) as info:
        make_chat(require_user=True).invoke("hi")
    places = info.value.searched
    assert places[0].startswith("the call's user=")
    assert places.index("user_context()") > places.index("config['metadata']['langfuse_user_id']")
    assert places[-1] == "the model's `user` field"
