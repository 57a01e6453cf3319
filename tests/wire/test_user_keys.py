"""A key per end-user: created on the first call, bound to the user, limited by OpenRouter itself."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from llama_index.core.llms import ChatMessage

from openrouter_attribution import (
    AuthenticationError,
    BudgetExceededError,
    ConfigurationError,
    OpenRouterUserKeys,
    UserIdError,
    user_context,
)
from openrouter_attribution.langchain import ChatOpenRouter, OpenRouterEmbeddings
from openrouter_attribution.llama_index import OpenRouter

MODEL = "openai/gpt-4o-mini"
SECRET = "a-test-secret-of-at-least-32-characters!"


@pytest.fixture
def user_keys(fake_openrouter):
    return OpenRouterUserKeys(
        secret=SECRET, management_key=fake_openrouter.management_key, base_url=fake_openrouter.base_url
    )


def _chat(server, user_keys, **kwargs):
    return ChatOpenRouter(model=MODEL, base_url=server.base_url, api_key=server.api_key, user_keys=user_keys, **kwargs)


def _sent_keys(server):
    """(user, bearer key) of every model request, in order."""
    return [(r.body.get("user"), r.headers["authorization"].removeprefix("Bearer ")) for r in server.chat_requests]


def _created(server):
    return [r for r in server.requests if r.method == "POST" and r.path == "/api/v1/keys"]


@dataclass
class Context:
    user_id: str


def test_an_agent_run_per_user_sends_each_users_own_key(fake_openrouter, user_keys):
    @tool
    def order_status(order_id: int) -> str:
        """Look up an order."""
        return f"order {order_id} shipped"

    agent = create_agent(_chat(fake_openrouter, user_keys), tools=[order_status], context_schema=Context)
    users = ["app_alice", "app_bob", "app_carol"]
    for user in users + users:  # the second round finds every key cached
        result = agent.invoke(
            {"messages": [("human", "Where is order 7? Use order_status.")]}, context=Context(user_id=user)
        )
        assert "shipped" in result["messages"][-1].content
    sent = _sent_keys(fake_openrouter)
    assert len(sent) == 12  # two model calls per run: the tool call, then the answer
    assert {user: {key for u, key in sent if u == user} for user in users} == {
        user: {user_keys.derive(user)} for user in users
    }
    assert fake_openrouter.api_key not in {key for _, key in sent}
    keys = fake_openrouter.created_keys()
    assert sorted(k["external_user"] for k in keys) == users
    assert sorted(k["name"] for k in keys) == [f"user:{user}" for user in users]
    assert len(_created(fake_openrouter)) == 3  # each key created once
    registered = [r.body["user"] for r in fake_openrouter.requests if r.path == "/api/v1/external-users"]
    assert registered == users


async def test_async_and_streamed_calls_send_the_users_key(fake_openrouter, user_keys):
    llm = _chat(fake_openrouter, user_keys)
    with user_context("app_async"):
        await llm.ainvoke("hi")
        chunks = [chunk async for chunk in llm.astream("hi")]
        assert chunks
        list(llm.stream("hi"))
    assert _sent_keys(fake_openrouter) == [("app_async", user_keys.derive("app_async"))] * 3
    assert len(_created(fake_openrouter)) == 1


def test_llama_index_and_embeddings_use_the_same_keys(fake_openrouter, user_keys):
    llm = OpenRouter(
        model=MODEL, api_base=fake_openrouter.base_url, api_key=fake_openrouter.api_key, user_keys=user_keys
    )
    embeddings = OpenRouterEmbeddings(
        base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, user_keys=user_keys
    )
    with user_context("app_rag"):
        llm.chat([ChatMessage(role="user", content="hi")])
        embeddings.embed_query("what is attribution?")
    key = user_keys.derive("app_rag")
    assert [r.headers["authorization"] for r in fake_openrouter.requests if r.path.endswith(("/chat/completions",
            "/embeddings"))] == [f"Bearer {key}"] * 2  # fmt: skip
    assert len(_created(fake_openrouter)) == 1


def test_a_call_without_a_user_uses_the_models_own_key(fake_openrouter, user_keys):
    _chat(fake_openrouter, user_keys, require_user=False).invoke("hi")
    assert _sent_keys(fake_openrouter) == [(None, fake_openrouter.api_key)]
    assert fake_openrouter.created_keys() == []


def test_the_key_is_the_users_as_sent_after_the_identity_policy(fake_openrouter, user_keys):
    from openrouter_attribution import UserIdPolicy

    llm = _chat(fake_openrouter, user_keys, user_policy=UserIdPolicy(prefix="app_"))
    llm.invoke("hi", user="42")
    assert _sent_keys(fake_openrouter) == [("app_42", user_keys.derive("app_42"))]
    assert [k["external_user"] for k in fake_openrouter.created_keys()] == ["app_42"]
    with pytest.raises(UserIdError):
        llm.invoke("hi", user="alice@example.com")
    assert len(fake_openrouter.chat_requests) == 1
    assert [k["external_user"] for k in fake_openrouter.created_keys()] == ["app_42"]  # nothing created for it


def test_a_user_over_the_limit_is_refused_by_openrouter_until_the_next_day(fake_openrouter):
    keys = OpenRouterUserKeys(secret=SECRET, management_key=fake_openrouter.management_key,
                              base_url=fake_openrouter.base_url, limit={"app_small": 0.0001},
                              limit_reset="daily")  # fmt: skip
    llm = _chat(fake_openrouter, keys)
    with pytest.raises(BudgetExceededError) as info:  # noqa: PT012 - the refusal comes after some calls
        for _ in range(50):
            llm.invoke("hi", user="app_small")
    err = info.value
    assert (err.user, err.kind, err.period) == ("app_small", "openrouter_key", "day")
    assert "OpenRouter" in str(err)
    assert "app_small" in str(err)
    refused = [r for r in fake_openrouter.chat_requests if r.body["user"] == "app_small"]
    assert 5 < len(refused) < 50
    usage = keys.usage("app_small")
    assert usage.limit_remaining == 0
    assert usage.usage_daily >= usage.limit
    llm.invoke("hi", user="app_other")  # another user is unaffected
    with pytest.raises(BudgetExceededError):
        llm.invoke("hi", user="app_small")
    assert len(fake_openrouter.chat_requests) == len(refused) + 2  # refused once each: nothing retried
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    fake_openrouter.clock = tomorrow.timestamp
    llm.invoke("hi", user="app_small")
    assert keys.usage("app_small").usage_daily > 0


def test_a_deleted_key_is_created_again_once(fake_openrouter, user_keys):
    import http.client

    llm = _chat(fake_openrouter, user_keys)
    llm.invoke("hi", user="app_gone")
    (key,) = fake_openrouter.created_keys()
    conn = http.client.HTTPConnection("127.0.0.1", fake_openrouter.port, timeout=5)
    conn.request(
        "DELETE", f"/api/v1/keys/{key['hash']}", headers={"Authorization": f"Bearer {fake_openrouter.management_key}"}
    )
    assert conn.getresponse().status == 200
    conn.close()
    llm.invoke("hi", user="app_gone")
    assert len(_created(fake_openrouter)) == 2
    assert [k["external_user"] for k in fake_openrouter.created_keys()] == ["app_gone"]


def test_a_disabled_key_fails_with_a_typed_error_after_one_more_try(fake_openrouter, user_keys):
    llm = _chat(fake_openrouter, user_keys)
    llm.invoke("hi", user="app_off")
    assert user_keys.disable("app_off").disabled
    with pytest.raises(AuthenticationError):
        llm.invoke("hi", user="app_off")
    assert len(fake_openrouter.chat_requests) == 3  # the first call, then the refused one and one more try


def test_a_wrong_management_key_is_named_and_no_model_request_is_sent(fake_openrouter):
    keys = OpenRouterUserKeys(
        secret=SECRET, management_key="sk-or-wrong-management-key-value", base_url=fake_openrouter.base_url
    )
    with pytest.raises(AuthenticationError) as info:
        _chat(fake_openrouter, keys).invoke("hi", user="app_1")
    assert "management key" in str(info.value)
    assert "sk-or-wrong-management-key-value" not in str(info.value)
    assert fake_openrouter.chat_requests == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"secret": "short"}, "at least 32 characters"), ({"management_key": ""}, "management_key"),
     ({"limit_reset": "yearly"}, "limit_reset"), ({"secrt": SECRET}, "did you mean 'secret'?")],
)  # fmt: skip
def test_bad_settings_are_refused_at_construction(fake_openrouter, monkeypatch, kwargs, fragment):
    monkeypatch.delenv("OPENROUTER_MANAGEMENT_KEY", raising=False)
    monkeypatch.delenv("OPENROUTER_USER_KEY_SECRET", raising=False)
    settings = {"secret": SECRET, "management_key": fake_openrouter.management_key, **kwargs}
    with pytest.raises(ConfigurationError, match=fragment):
        OpenRouterUserKeys(**settings)


def test_no_secret_appears_anywhere(fake_openrouter, user_keys, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    llm = _chat(fake_openrouter, user_keys)
    llm.invoke("hi", user="app_secret")
    derived = user_keys.derive("app_secret")
    secrets = [SECRET, fake_openrouter.management_key, derived]
    shown = [repr(user_keys), repr(llm), str(llm), llm.model_dump_json(), pickle.dumps(llm).decode("latin-1")]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(user_keys)
    user_keys.set_limit("app_secret", 0)
    with pytest.raises(BudgetExceededError) as info:
        llm.invoke("hi", user="app_secret")
    shown += [str(info.value), caplog.text, *capsys.readouterr()]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    assert pickle.loads(pickle.dumps(llm)).user_keys is None  # left out of the pickle, like the API key


def test_usage_and_limits_from_openrouter(fake_openrouter, user_keys):
    _chat(fake_openrouter, user_keys).invoke("hi", user="app_meter")
    usage = user_keys.usage("app_meter")
    assert usage.user == "app_meter"
    assert usage.usage > 0
    assert usage.limit is None
    assert user_keys.set_limit("app_meter", 2, reset="weekly").limit == 2
    assert user_keys.usage("app_meter").limit_reset == "weekly"
    assert [row.user for row in user_keys.list_keys()] == ["app_meter"]
    with pytest.raises(KeyError):
        user_keys.usage("app_nobody")


def test_concurrent_first_calls_from_four_processes_create_one_key(fake_openrouter, tmp_path):
    script = tmp_path / "calls.py"
    script.write_text(
        textwrap.dedent(f"""
        from concurrent.futures import ThreadPoolExecutor
        from openrouter_attribution import OpenRouterUserKeys
        from openrouter_attribution.langchain import ChatOpenRouter

        keys = OpenRouterUserKeys(secret={SECRET!r}, management_key={fake_openrouter.management_key!r},
                                  base_url={fake_openrouter.base_url!r})
        llm = ChatOpenRouter(model={MODEL!r}, base_url={fake_openrouter.base_url!r},
                             api_key={fake_openrouter.api_key!r}, user_keys=keys)
        with ThreadPoolExecutor(13) as pool:
            answers = list(pool.map(lambda _: llm.invoke("hi", user="app_new").content, range(13)))
        print(len(answers))
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env) for _ in range(4)]  # fmt: skip
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, [err for _, err in outputs]
    assert sum(int(out) for out, _ in outputs) == 52
    assert [k["external_user"] for k in fake_openrouter.created_keys()] == ["app_new"]
    assert len(fake_openrouter.chat_requests) == 52
    assert 1 <= len(_created(fake_openrouter)) <= 4  # at most one attempt per process; one key made


def test_beside_a_budget_and_a_ledger(fake_openrouter, user_keys, tmp_path):
    from openrouter_attribution import UsageLedger, UserBudget

    with UsageLedger(tmp_path / "usage.db") as ledger:
        llm = _chat(fake_openrouter, user_keys, ledger=ledger, budget=UserBudget(max_requests=1, reserve=0.001))
        llm.invoke("hi", user="app_both")
        with pytest.raises(BudgetExceededError) as info:
            llm.invoke("hi", user="app_both")
        assert info.value.kind == "requests"  # our budget refused first: nothing was sent
        fresh = OpenRouterUserKeys(
            secret=SECRET, management_key=fake_openrouter.management_key, base_url=fake_openrouter.base_url
        )
        strict = _chat(fake_openrouter, fresh, ledger=ledger, budget=UserBudget(max_requests=1))
        with pytest.raises(BudgetExceededError):  # refused before its key is even looked for
            strict.invoke("hi", user="app_both")
        (row,) = ledger.totals(by="user")
    assert (row.key, row.requests) == ("app_both", 1)
    assert row.cost > 0
    assert _sent_keys(fake_openrouter) == [("app_both", user_keys.derive("app_both"))]
    assert [k["external_user"] for k in fake_openrouter.created_keys()] == ["app_both"]
    assert len(_created(fake_openrouter)) == 1
