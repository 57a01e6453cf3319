"""Pickles and JSON dumps of both models: no API key, no hash key, and a model that works again after loading."""

from __future__ import annotations

import pickle

import pytest

from openrouter_attribution import ConfigurationError, UsageLedger, UserIdPolicy
from tests.wire.embeddings_helpers import make_lc_embeddings, make_li_embedding
from tests.wire.llama_index_helpers import MESSAGES, make_llm

HASH_KEY = "serialization-hash-key-0123456789"
SECRET_KEY = "sk-or-v1-secret-key-that-must-never-be-pickled"


@pytest.fixture(params=["langchain", "llama_index"])
def build(request, fake_openrouter, make_chat):
    """Build a model of either framework for the local server (extra settings as keywords)."""

    def make(**kwargs):
        if request.param == "langchain":
            return make_chat(**kwargs)
        return make_llm(fake_openrouter, **kwargs)

    make.framework = request.param
    return make


def _call(model, **kwargs):
    if hasattr(model, "invoke"):
        return model.invoke("hi", **kwargs).content
    return model.chat(MESSAGES, **kwargs).message.content


def _secret_bytes(key: str) -> list[bytes]:
    return [key.encode(), key.encode("utf-16-le"), key[8:].encode()]


def test_a_pickle_holds_no_api_key_and_reads_it_again(fake_openrouter, build, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    model = build(api_key=SECRET_KEY, user="app_1")
    data = pickle.dumps(model)
    for secret in _secret_bytes(SECRET_KEY):
        assert secret not in data
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    restored = pickle.loads(data)
    assert restored.api_key.get_secret_value() == fake_openrouter.api_key
    assert _call(restored)
    assert fake_openrouter.last_request.headers["Authorization"] == f"Bearer {fake_openrouter.api_key}"
    assert fake_openrouter.last_request.body["user"] == "app_1"


def test_unpickling_without_a_key_in_the_environment_fails_clearly(fake_openrouter, build, monkeypatch):
    data = pickle.dumps(build(api_key=SECRET_KEY))
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENROUTER_API_KEY") as info:
        pickle.loads(data)
    assert SECRET_KEY not in str(info.value)


def test_a_pickle_with_a_policy_holds_neither_key(fake_openrouter, build, monkeypatch):
    policy = UserIdPolicy(prefix="app_", hash_key=HASH_KEY)
    model = build(api_key=SECRET_KEY, user_policy=policy, user="acct-1", session_id="s-1")
    data = pickle.dumps(model)
    for secret in (*_secret_bytes(SECRET_KEY), *_secret_bytes(HASH_KEY), b"acct-1"):
        assert secret not in data
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    restored = pickle.loads(data)  # the policy's key material is still alive in this process
    _call(restored)
    _call(restored, user="acct-2")
    sent = [request.body["user"] for request in fake_openrouter.chat_requests]
    assert sent == [policy.apply("acct-1"), policy.apply("acct-2")]  # the default is not hashed twice
    assert fake_openrouter.last_request.body["session_id"] == policy.apply_session("s-1")


def test_model_dump_json_works_with_a_policy_and_a_ledger(fake_openrouter, build, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    policy = UserIdPolicy(prefix="app_", hash_key=HASH_KEY, pii="hash")
    model = build(api_key=SECRET_KEY, user_policy=policy, ledger=ledger)
    text = model.model_dump_json()
    dumped = model.model_dump()
    for secret in (SECRET_KEY, HASH_KEY):
        assert secret not in text
        assert secret not in repr(dumped)
    if build.framework == "langchain":  # LlamaIndex excludes the policy and the ledger from its dumps
        assert dumped["user_policy"] == {"prefix": "app_", "pii": "hash", "hash_all": True, "has_hash_key": True,
                                         "transform": None, "require_user": False}  # fmt: skip
        assert dumped["ledger"] == "UsageLedger"
    ledger.close()


def _tenant(user_id: str) -> str:
    return "tenant-" + user_id


@pytest.mark.parametrize("make", [make_lc_embeddings, make_li_embedding], ids=["langchain", "llama_index"])
def test_an_unpickled_embeddings_model_sends_its_default_ids_as_before(fake_openrouter, make, monkeypatch):
    # A transform is not idempotent: running the policy on an id it already produced would show.
    policy = UserIdPolicy(transform=_tenant)
    model = make(fake_openrouter, api_key=SECRET_KEY, user_policy=policy, user="acct-1", session_id="s-1")
    data = pickle.dumps(model)
    for secret in _secret_bytes(SECRET_KEY):
        assert secret not in data
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    restored = pickle.loads(data)
    if hasattr(restored, "embed_query"):
        restored.embed_query("hi")
    else:
        restored.get_query_embedding("hi")
    body = fake_openrouter.embeddings_requests[-1].body
    assert (body["user"], body["session_id"]) == (policy.apply("acct-1"), policy.apply_session("s-1"))


def test_an_unpickled_chat_model_sends_its_default_ids_as_before(fake_openrouter, build, monkeypatch):
    policy = UserIdPolicy(transform=_tenant)
    data = pickle.dumps(build(api_key=SECRET_KEY, user_policy=policy, user="acct-1", session_id="s-1"))
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    _call(pickle.loads(data))
    body = fake_openrouter.last_request.body
    assert (body["user"], body["session_id"]) == (policy.apply("acct-1"), policy.apply_session("s-1"))
