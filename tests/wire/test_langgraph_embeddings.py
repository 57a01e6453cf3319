"""Embeddings made inside a LangGraph run take the run's user: runtime context and LangGraph Platform identity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from openrouter_attribution import user_context
from tests.wire.embeddings_helpers import attributions, make_lc_embeddings


@dataclass
class Context:
    user_id: str | None = None
    session_id: str | None = None


class State(TypedDict):
    question: str
    dimensions: int


def _graph(embeddings, *, asynchronous: bool = False):
    """Two nodes that embed the question: sync nodes, or async ones for ``ainvoke``."""

    def embed(state: State) -> dict[str, int]:
        return {"dimensions": len(embeddings.embed_query(state["question"]))}

    async def aembed(state: State) -> dict[str, int]:
        return {"dimensions": len(await embeddings.aembed_query(state["question"]))}

    node = aembed if asynchronous else embed
    builder = StateGraph(State, context_schema=Context)
    builder.add_node("first", node)
    builder.add_node("second", node)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_runtime_context_attributes_embeddings_in_nodes(fake_openrouter, asynchronous):
    graph = _graph(make_lc_embeddings(fake_openrouter), asynchronous=asynchronous)
    context = Context(user_id="app_ctx", session_id="s_ctx")
    with user_context("app_outer"):  # the runtime context outranks user_context()
        if asynchronous:
            asyncio.run(graph.ainvoke({"question": "q", "dimensions": 0}, context=context))
        else:
            graph.invoke({"question": "q", "dimensions": 0}, context=context)
    assert attributions(fake_openrouter.embeddings_requests) == [("app_ctx", "s_ctx")] * 2


def test_platform_identity_outranks_client_sent_ids_for_embeddings(fake_openrouter):
    graph = _graph(make_lc_embeddings(fake_openrouter))
    config = {"configurable": {"langgraph_auth_user_id": "app_authenticated", "user_id": "app_claimed",
                               "thread_id": "thread-9"}}  # fmt: skip
    graph.invoke({"question": "q", "dimensions": 0}, config=config, context=Context(user_id="app_other"))
    assert attributions(fake_openrouter.embeddings_requests) == [("app_authenticated", "thread-9")] * 2
