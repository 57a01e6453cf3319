"""OpenRouterRerank (LangChain) on the wire: every call style x every user source, documents kept whole."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import RunnableLambda

from openrouter_attribution import user_context
from tests.wire.embeddings_helpers import DOCUMENTS, QUESTIONS, attributions
from tests.wire.rerank_helpers import make_lc_rerank

DOCS = [Document(text, id=f"doc-{n}", metadata={"source": f"file-{n}.txt"}) for n, text in enumerate(DOCUMENTS)]
CALL_STYLES = ["compress_documents", "acompress_documents"]


def _call(style: str, reranker: Any, config: dict[str, Any] | None = None, query: str = QUESTIONS[0]) -> Any:
    """Run one call style, inside a runnable invoked with ``config`` when one is given (as in a chain)."""
    if style == "acompress_documents":

        async def inner(_: Any) -> Any:
            return await reranker.acompress_documents(DOCS, query)

        if config is None:
            return asyncio.run(inner(None))
        return asyncio.run(RunnableLambda(inner).ainvoke(None, config=config))
    if config is None:
        return reranker.compress_documents(DOCS, query)
    return RunnableLambda(lambda _: reranker.compress_documents(DOCS, query)).invoke(None, config=config)


SOURCES = {
    "configurable": ({"configurable": {"user_id": "app_cfg", "session_id": "s_cfg"}}, ("app_cfg", "s_cfg")),
    "metadata": ({"metadata": {"user_id": "app_meta", "session_id": "s_meta"}}, ("app_meta", "s_meta")),
    "langfuse": ({"metadata": {"langfuse_user_id": "app_lf", "langfuse_session_id": "s_lf"}}, ("app_lf", "s_lf")),
    "thread_id": ({"configurable": {"user_id": "app_t", "thread_id": "thread-1"}}, ("app_t", "thread-1")),
    "platform": ({"configurable": {"langgraph_auth_user_id": "app_auth", "user_id": "app_claimed"}},
                 ("app_auth", None)),
}  # fmt: skip


@pytest.mark.parametrize("style", CALL_STYLES)
@pytest.mark.parametrize("source", SOURCES)
def test_run_config_sources(fake_openrouter, style, source):
    config, expected = SOURCES[source]
    assert _call(style, make_lc_rerank(fake_openrouter), config)
    assert attributions(fake_openrouter.rerank_requests) == [expected]


@pytest.mark.parametrize("style", CALL_STYLES)
def test_resolution_order_config_then_context_then_default(fake_openrouter, style):
    reranker = make_lc_rerank(fake_openrouter, user="app_default")
    with user_context("app_ctx", session_id="s_ctx"):
        _call(style, reranker, {"configurable": {"user_id": "app_cfg"}})
        _call(style, reranker)
    _call(style, reranker)
    assert attributions(fake_openrouter.rerank_requests) == [
        ("app_cfg", "s_ctx"),  # each field resolves on its own: the session comes from user_context
        ("app_ctx", "s_ctx"),
        ("app_default", None),
    ]


def test_custom_keys(fake_openrouter):
    reranker = make_lc_rerank(fake_openrouter, user_id_key="account", session_id_key="conversation")
    _call("compress_documents", reranker, {"configurable": {"account": "app_9", "conversation": "c-1"}})
    assert attributions(fake_openrouter.rerank_requests) == [("app_9", "c-1")]


@pytest.mark.parametrize("style", CALL_STYLES)
def test_documents_keep_id_and_metadata_and_gain_the_relevance_score(fake_openrouter, style):
    ranked = _call(style, make_lc_rerank(fake_openrouter, top_n=2, user="app_1"), query=QUESTIONS[1])
    assert [doc.id for doc in ranked] == ["doc-1", ranked[1].id]
    best = ranked[0]
    assert (best.page_content, best.metadata["source"]) == (DOCUMENTS[1], "file-1.txt")
    assert 0 < best.metadata["relevance_score"] <= 1
    assert ranked[1].metadata["relevance_score"] <= best.metadata["relevance_score"]
    assert "relevance_score" not in DOCS[1].metadata  # the caller's documents are left as they were


def test_call_styles_cover_the_compressor_interface():
    abstract = {name for name, _ in inspect.getmembers(BaseDocumentCompressor) if "compress_documents" in name}
    assert abstract == set(CALL_STYLES)
