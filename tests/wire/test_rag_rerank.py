"""RAG with a reranker, end to end: the embeddings, rerank and chat requests of a question all carry its user."""

from __future__ import annotations

import asyncio

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langgraph.graph import END, START, StateGraph
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.instrumentation.dispatcher import instrument_tags
from typing_extensions import TypedDict

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
from tests.wire.rerank_helpers import make_lc_rerank, make_li_rerank
from tests.wire.test_langgraph_embeddings import Context


def _prompt(server) -> str:
    (request,) = server.chat_requests
    content = request.body["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(part["text"] for part in content)


# -- LangChain: ContextualCompressionRetriever(base_compressor=OpenRouterRerank(...)) -----------------------


@pytest.fixture
def lc_chain(fake_openrouter):
    """InMemoryVectorStore retriever (3 documents) reranked down to 1 + prompt + ChatOpenRouter."""
    with user_context("app_indexer"):
        store = InMemoryVectorStore.from_texts(DOCUMENTS, embedding=make_lc_embeddings(fake_openrouter))
    fake_openrouter.reset()
    retriever = ContextualCompressionRetriever(base_compressor=make_lc_rerank(fake_openrouter, top_n=1),
                                               base_retriever=store.as_retriever(search_kwargs={"k": 3}))  # fmt: skip
    prompt = ChatPromptTemplate.from_template("Answer from this context.\nContext: {context}\nQuestion: {question}")
    llm = ChatOpenRouter(**endpoint(fake_openrouter, model=CHAT_MODEL))
    context = retriever | (lambda docs: "\n".join(doc.page_content for doc in docs))
    return {"context": context, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()


def _assert_one_question(server, document: str, attribution: tuple[str, str | None]) -> None:
    assert request_kinds(server) == ["embeddings", "rerank", "chat"]
    assert attributions(server.requests) == [attribution] * 3
    (rerank,) = server.rerank_requests
    assert len(rerank.body["documents"]) == 3  # the retriever's three, reranked to one
    context = _prompt(server).split("Context: ", 1)[1].split("\nQuestion:", 1)[0]
    assert context == document


def test_langchain_chain_invoke_with_configurable_user(fake_openrouter, lc_chain):
    assert lc_chain.invoke(QUESTIONS[0], config={"configurable": {"user_id": "app_alice", "thread_id": "t-1"}})
    _assert_one_question(fake_openrouter, DOCUMENTS[0], ("app_alice", "t-1"))


@pytest.mark.parametrize("call", ["ainvoke", "astream"])
def test_langchain_chain_async_with_configurable_user(fake_openrouter, lc_chain, call):
    config = {"configurable": {"user_id": "app_bob"}}

    async def run() -> str:
        if call == "ainvoke":
            return await lc_chain.ainvoke(QUESTIONS[1], config=config)
        return "".join([chunk async for chunk in lc_chain.astream(QUESTIONS[1], config=config)])

    assert asyncio.run(run())
    _assert_one_question(fake_openrouter, DOCUMENTS[1], ("app_bob", None))


class State(TypedDict):
    question: str
    answer: str


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_langchain_chain_in_a_langgraph_node_takes_the_runtime_context_user(fake_openrouter, lc_chain, asynchronous):
    def answer(state: State) -> dict[str, str]:
        return {"answer": lc_chain.invoke(state["question"])}

    async def aanswer(state: State) -> dict[str, str]:
        return {"answer": await lc_chain.ainvoke(state["question"])}

    builder = StateGraph(State, context_schema=Context)
    builder.add_node("answer", aanswer if asynchronous else answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    graph = builder.compile()
    inputs: State = {"question": QUESTIONS[2], "answer": ""}
    context = Context(user_id="app_ctx", session_id="s_ctx")
    with user_context("app_outer"):  # the runtime context outranks user_context()
        result = asyncio.run(graph.ainvoke(inputs, context=context)) if asynchronous else graph.invoke(
            inputs, context=context)  # fmt: skip
    assert result["answer"]
    _assert_one_question(fake_openrouter, DOCUMENTS[2], ("app_ctx", "s_ctx"))


# -- LlamaIndex: a query engine with the reranker as node postprocessor ----------------------------------------


@pytest.fixture
def li_engine(fake_openrouter):
    with user_context("app_indexer"):
        index = VectorStoreIndex.from_documents(
            [Document(text=text) for text in DOCUMENTS], embed_model=make_li_embedding(fake_openrouter)
        )
    fake_openrouter.reset()
    return index.as_query_engine(llm=OpenRouter(**endpoint(fake_openrouter, model=CHAT_MODEL)), similarity_top_k=3,
                                 node_postprocessors=[make_li_rerank(fake_openrouter, top_n=1)])  # fmt: skip


def _assert_li_question(server, document: str, attribution: tuple[str, str | None]) -> None:
    assert request_kinds(server) == ["embeddings", "rerank", "chat"]
    assert attributions(server.requests) == [attribution] * 3
    assert document in _prompt(server)
    assert not any(other in _prompt(server) for other in DOCUMENTS if other != document)


@pytest.mark.parametrize("source", ["instrument_tags", "user_context"])
def test_llama_index_query(fake_openrouter, li_engine, source):
    scope = instrument_tags({"user_id": "app_dora", "session_id": "chat-1"}) if source == "instrument_tags" else (
        user_context("app_dora", session_id="chat-1"))  # fmt: skip
    with scope:
        response = li_engine.query(QUESTIONS[1])
    assert str(response)
    assert response.source_nodes[0].score > 0  # the reranker's relevance score
    _assert_li_question(fake_openrouter, DOCUMENTS[1], ("app_dora", "chat-1"))


@pytest.mark.parametrize("source", ["instrument_tags", "user_context"])
def test_llama_index_aquery(fake_openrouter, li_engine, source):
    async def ask() -> str:
        if source == "user_context":
            async with user_context("app_eve"):
                return str(await li_engine.aquery(QUESTIONS[2]))
        with instrument_tags({"user_id": "app_eve"}):
            return str(await li_engine.aquery(QUESTIONS[2]))

    assert asyncio.run(ask())
    _assert_li_question(fake_openrouter, DOCUMENTS[2], ("app_eve", None))
