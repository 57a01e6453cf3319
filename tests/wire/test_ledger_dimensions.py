"""Records keep the metadata a call was attributed with (after the identity policy), from every source:
``user_context``, a call's ``openrouter_metadata``, a LangGraph run's runtime context; for every kind of
call, though ``/embeddings`` and ``/rerank`` do not take it on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain.agents import create_agent
from langchain_core.documents import Document

from openrouter_attribution import UsageLedger, UserIdPolicy, user_context
from tests.wire.embeddings_helpers import make_lc_embeddings
from tests.wire.rerank_helpers import make_lc_rerank


def test_every_kind_of_call_records_the_tenant(fake_openrouter, make_chat, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    chat = make_chat(ledger=ledger)
    embeddings = make_lc_embeddings(fake_openrouter, ledger=ledger)
    rerank = make_lc_rerank(fake_openrouter, ledger=ledger)
    with user_context("u_1", metadata={"tenant": "acme"}):
        chat.invoke("hello")
        list(chat.stream("hello again"))
        embeddings.embed_query("a text")
        rerank.compress_documents([Document(page_content="a"), Document(page_content="b")], "which?")
    chat.invoke("hi", user="u_2", openrouter_metadata={"tenant": "globex", "plan": "pro"})
    got = sorted((r.kind, r.user, r.metadata) for r in ledger.records())
    assert got == [
        ("chat", "u_1", {"tenant": "acme"}),
        ("chat", "u_1", {"tenant": "acme"}),
        ("chat", "u_2", {"tenant": "globex", "plan": "pro"}),
        ("embeddings", "u_1", {"tenant": "acme"}),
        ("rerank", "u_1", {"tenant": "acme"}),
    ]
    # On the wire: chat carries the metadata; /embeddings and /rerank take none.
    assert [r.body.get("metadata") for r in fake_openrouter.chat_requests][0] == {"tenant": "acme"}
    assert [r.body.get("metadata") for r in fake_openrouter.embeddings_requests] == [None]
    assert [r.body.get("metadata") for r in fake_openrouter.rerank_requests] == [None]
    assert {t.key: t.requests for t in ledger.totals("metadata.tenant")} == {"acme": 4, "globex": 1}
    ledger.close()


def test_records_keep_the_metadata_as_sent_after_the_policy(fake_openrouter, make_chat, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    policy = UserIdPolicy(pii="hash", hash_key=b"k" * 32, hash_all=False)
    chat = make_chat(ledger=ledger, user_policy=policy)
    chat.invoke("hello", user="u_1", openrouter_metadata={"tenant": "acme", "contact": "jane@example.com"})
    (record,) = ledger.records()
    assert record.metadata == fake_openrouter.chat_requests[0].body["metadata"]
    assert record.metadata["tenant"] == "acme"
    assert "jane@example.com" not in str(record.metadata)
    ledger.close()


@dataclass
class TenantContext:
    user_id: str
    openrouter_metadata: dict[str, str] = field(default_factory=dict)


def test_a_langgraph_runtime_context_carries_the_tenant(fake_openrouter, make_chat, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    agent = create_agent(make_chat(ledger=ledger), tools=[], context_schema=TenantContext)
    for user, tenant in (("u_1", "acme"), ("u_2", "globex")):
        agent.invoke({"messages": [("human", "hi")]}, context=TenantContext(user, {"tenant": tenant}))
    assert [r.body["metadata"] for r in fake_openrouter.chat_requests] == [{"tenant": "acme"}, {"tenant": "globex"}]
    assert sorted((r.user, r.metadata["tenant"]) for r in ledger.records()) == [("u_1", "acme"), ("u_2", "globex")]
    ledger.close()
