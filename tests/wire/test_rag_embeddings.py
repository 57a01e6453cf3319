"""Retrieval-augmented generation, end to end: every embeddings and chat request carries the run's user."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.instrumentation.dispatcher import instrument_tags

from openrouter_attribution import user_context
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.llama_index import OpenRouter
from tests.wire.embeddings_helpers import (
    CHAT_MODEL,
    DOCUMENTS,
    QUESTIONS,
    attributions,
    endpoint,
    make_lc_embeddings,
    make_li_embedding,
    request_kinds,
)


def _prompts(server) -> list[str]:
    """The text of the last message of each chat request: the retrieved context goes there."""
    prompts = []
    for request in server.chat_requests:
        content = request.body["messages"][-1]["content"]
        prompts.append(content if isinstance(content, str) else " ".join(part["text"] for part in content))
    return prompts


# -- LangChain ---------------------------------------------------------------------------------------------


@pytest.fixture
def lc_chain(fake_openrouter):
    """InMemoryVectorStore + retriever + prompt + ChatOpenRouter, indexed under its own user."""
    embeddings = make_lc_embeddings(fake_openrouter)
    with user_context("app_indexer"):
        store = InMemoryVectorStore.from_texts(DOCUMENTS, embedding=embeddings)
    assert attributions(fake_openrouter.embeddings_requests) == [("app_indexer", None)]
    fake_openrouter.reset()
    retriever = store.as_retriever(search_kwargs={"k": 1})
    prompt = ChatPromptTemplate.from_template("Answer from this context.\nContext: {context}\nQuestion: {question}")
    llm = ChatOpenRouter(**endpoint(fake_openrouter, model=CHAT_MODEL))
    context = retriever | (lambda docs: "\n".join(doc.page_content for doc in docs))
    return {"context": context, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()


def _config(user: str) -> dict:
    return {"configurable": {"user_id": user, "thread_id": f"thread-{user}"}}


def test_langchain_chain_invoke(fake_openrouter, lc_chain):
    assert lc_chain.invoke(QUESTIONS[0], config=_config("app_alice"))
    # The local server's vectors retrieve the document that shares the question's words.
    assert [DOCUMENTS[0] in prompt for prompt in _prompts(fake_openrouter)] == [True]
    assert request_kinds(fake_openrouter) == ["embeddings", "chat"]
    assert attributions(fake_openrouter.requests) == [("app_alice", "thread-app_alice")] * 2


def test_langchain_chain_ainvoke_and_astream(fake_openrouter, lc_chain):
    async def run() -> None:
        await lc_chain.ainvoke(QUESTIONS[1], config=_config("app_bob"))
        assert "".join([chunk async for chunk in lc_chain.astream(QUESTIONS[2], config=_config("app_carol"))])

    asyncio.run(run())
    assert request_kinds(fake_openrouter) == ["embeddings", "chat"] * 2
    assert [u for u, _ in attributions(fake_openrouter.requests)] == ["app_bob"] * 2 + ["app_carol"] * 2


def test_langchain_chain_batch_keeps_each_inputs_user(fake_openrouter, lc_chain):
    users = [f"app_{i}" for i in range(len(QUESTIONS))]
    assert len(lc_chain.batch(QUESTIONS, config=[_config(user) for user in users])) == 3
    prompts = _prompts(fake_openrouter)
    for document, question in zip(DOCUMENTS, QUESTIONS, strict=True):
        assert any(document in prompt and question in prompt for prompt in prompts)
    for request in fake_openrouter.requests:
        text = request.body["input"][0] if request.is_embeddings else request.body["messages"][-1]["content"]
        asked = next(i for i, question in enumerate(QUESTIONS) if question in text)
        assert request.body["user"] == users[asked]
    assert len(fake_openrouter.requests) == 6


def test_a_retriever_on_its_own_takes_the_user_from_user_context(fake_openrouter):
    store = InMemoryVectorStore(embedding=make_lc_embeddings(fake_openrouter, user="app_fallback"))
    with user_context("app_ctx"):
        store.add_texts(DOCUMENTS)
        store.as_retriever().invoke(QUESTIONS[0])
    assert [u for u, _ in attributions(fake_openrouter.requests)] == ["app_ctx", "app_ctx"]


# -- LlamaIndex --------------------------------------------------------------------------------------------


@pytest.fixture
def li_index(fake_openrouter):
    embed_model = make_li_embedding(fake_openrouter)
    with user_context("app_indexer", session_id="indexing"):
        index = VectorStoreIndex.from_documents([Document(text=text) for text in DOCUMENTS], embed_model=embed_model)
    assert attributions(fake_openrouter.embeddings_requests) == [("app_indexer", "indexing")]
    fake_openrouter.reset()
    return index


def _engine(server, index):
    return index.as_query_engine(llm=OpenRouter(**endpoint(server, model=CHAT_MODEL)), similarity_top_k=1)


def test_llama_index_query_under_instrument_tags(fake_openrouter, li_index):
    engine = _engine(fake_openrouter, li_index)
    with instrument_tags({"user_id": "app_dora", "session_id": "chat-1"}):
        assert str(engine.query(QUESTIONS[1]))
    assert [DOCUMENTS[1] in prompt for prompt in _prompts(fake_openrouter)] == [True]
    assert request_kinds(fake_openrouter) == ["embeddings", "chat"]
    assert attributions(fake_openrouter.requests) == [("app_dora", "chat-1")] * 2


@pytest.mark.parametrize("source", ["user_context", "instrument_tags"])
def test_llama_index_aquery(fake_openrouter, li_index, source):
    engine = _engine(fake_openrouter, li_index)

    async def ask() -> str:
        if source == "user_context":
            async with user_context("app_eve"):
                return str(await engine.aquery(QUESTIONS[2]))
        with instrument_tags({"user_id": "app_eve"}):
            return str(await engine.aquery(QUESTIONS[2]))

    assert asyncio.run(ask())
    assert [DOCUMENTS[2] in prompt for prompt in _prompts(fake_openrouter)] == [True]
    assert request_kinds(fake_openrouter) == ["embeddings", "chat"]
    assert [u for u, _ in attributions(fake_openrouter.requests)] == ["app_eve"] * 2


def test_llama_index_insert_and_streamed_query(fake_openrouter, li_index):
    with user_context("app_frank"):
        li_index.insert(Document(text="Parrots repeat words they hear often."))
        streaming = li_index.as_query_engine(
            llm=OpenRouter(**endpoint(fake_openrouter, model=CHAT_MODEL)), similarity_top_k=1, streaming=True
        ).query("Why do parrots repeat words?")
    assert "".join(streaming.response_gen)  # read outside the block: the stream keeps its caller's user
    assert ["Parrots" in prompt for prompt in _prompts(fake_openrouter)] == [True]
    assert request_kinds(fake_openrouter) == ["embeddings", "embeddings", "chat"]
    assert [u for u, _ in attributions(fake_openrouter.requests)] == ["app_frank"] * 3
