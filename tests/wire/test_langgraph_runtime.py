"""The LangGraph runtime context of a run (``context=...``) attributes every model call made in it."""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime, tool
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel
from typing_extensions import TypedDict

from openrouter_attribution import user_context
from tests.wire.conftest import sent

QUESTION = {"messages": [("human", "Where is order 7? use lookup")]}


@dataclass
class DataContext:
    user_id: str | None = None
    session_id: str | None = None


class PydanticContext(BaseModel):
    user_id: str | None = None
    session_id: str | None = None


class DictContext(TypedDict, total=False):
    user_id: str
    session_id: str


class State(TypedDict):
    question: str
    answers: Annotated[list[str], operator.add]


def _lookup(llm):
    @tool
    def lookup(order_id: int) -> str:
        """Look up an order; asks the model to summarise it (a tool that itself calls the model)."""
        return f"order {order_id}: {llm.invoke(f'Summarise order {order_id}').content[:30]}"

    return lookup


def _agent(make_chat, context_schema):
    llm = make_chat()
    return create_agent(llm, tools=[_lookup(llm)], context_schema=context_schema)


async def _collect(stream) -> list[Any]:
    return [item async for item in stream]


# Each run style takes (graph, input, context, config) and runs the graph to the end once.
RUN_STYLES = {
    "invoke": lambda g, i, ctx, cfg: g.invoke(i, config=cfg, context=ctx),
    "ainvoke": lambda g, i, ctx, cfg: asyncio.run(g.ainvoke(i, config=cfg, context=ctx)),
    "stream_updates": lambda g, i, ctx, cfg: list(g.stream(i, config=cfg, context=ctx, stream_mode="updates")),
    "stream_values": lambda g, i, ctx, cfg: list(g.stream(i, config=cfg, context=ctx, stream_mode="values")),
    "stream_messages": lambda g, i, ctx, cfg: list(g.stream(i, config=cfg, context=ctx, stream_mode="messages")),
    "astream_updates": lambda g, i, ctx, cfg: asyncio.run(
        _collect(g.astream(i, config=cfg, context=ctx, stream_mode="updates"))
    ),
    "astream_messages": lambda g, i, ctx, cfg: asyncio.run(
        _collect(g.astream(i, config=cfg, context=ctx, stream_mode="messages"))
    ),
    "astream_many_modes": lambda g, i, ctx, cfg: asyncio.run(
        _collect(g.astream(i, config=cfg, context=ctx, stream_mode=["updates", "messages", "custom", "debug"]))
    ),
    "astream_events": lambda g, i, ctx, cfg: asyncio.run(
        _collect(g.astream_events(i, config=cfg, context=ctx, version="v2"))
    ),
}


@pytest.mark.parametrize("style", RUN_STYLES)
@pytest.mark.parametrize("schema", [DataContext, PydanticContext], ids=["dataclass", "pydantic"])
def test_create_agent_context_attributes_every_call(fake_openrouter, make_chat, schema, style):
    agent = _agent(make_chat, schema)
    for user in ("app_alice", "app_bob"):
        RUN_STYLES[style](agent, QUESTION, schema(user_id=user, session_id=f"chat-{user}"), None)
    # Per run: the agent's tool call, the tool's own model call, the agent's final answer.
    assert sent(fake_openrouter, "user") == ["app_alice"] * 3 + ["app_bob"] * 3
    assert sent(fake_openrouter, "session_id") == ["chat-app_alice"] * 3 + ["chat-app_bob"] * 3


def test_create_agent_context_given_as_a_dict_is_read(fake_openrouter, make_chat):
    # LangGraph coerces a dict into the dataclass; a graph without a schema keeps the dict.
    _agent(make_chat, DataContext).invoke(QUESTION, context={"user_id": "app_dict"})
    _agent(make_chat, None).invoke(QUESTION, context={"user_id": "app_plain"})
    assert sent(fake_openrouter, "user") == ["app_dict"] * 3 + ["app_plain"] * 3


def _question_graph(llm, context_schema=DictContext):
    def ask(state: State) -> dict[str, Any]:
        return {"answers": [llm.invoke(state["question"]).content]}

    def again(state: State) -> dict[str, Any]:
        return {"answers": [llm.invoke("again: " + state["question"]).content]}

    async def aagain(state: State) -> dict[str, Any]:
        return {"answers": [(await llm.ainvoke("again: " + state["question"])).content]}

    graph = StateGraph(State, context_schema=context_schema)
    graph.add_node("ask", ask)
    graph.add_node("ask_again", RunnableLambda(again, afunc=aagain))  # async runs await the model
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "ask_again")
    graph.add_edge("ask_again", END)
    return graph.compile()


def test_state_graph_typed_dict_context_streamed_in_updates_mode(fake_openrouter, make_chat):
    graph = _question_graph(make_chat())
    context: DictContext = {"user_id": "app_carol", "session_id": "s-carol"}

    async def run() -> list[Any]:
        return await _collect(graph.astream({"question": "q1", "answers": []}, context=context, stream_mode="updates"))

    updates = asyncio.run(run())
    updates += list(graph.stream({"question": "q2", "answers": []}, context=context, stream_mode="updates"))
    assert [next(iter(update)) for update in updates] == ["ask", "ask_again", "ask", "ask_again"]
    assert sent(fake_openrouter, "user") == ["app_carol"] * 4
    assert sent(fake_openrouter, "session_id") == ["s-carol"] * 4


def test_node_streaming_the_model_itself(fake_openrouter, make_chat):
    llm = make_chat()

    def ask(state: State) -> dict[str, Any]:
        return {"answers": ["".join(str(c.content) for c in llm.stream(state["question"]))]}

    async def ask_async(state: State) -> dict[str, Any]:
        return {"answers": ["".join([str(c.content) async for c in llm.astream(state["question"])])]}

    for node in (ask, ask_async):
        graph = StateGraph(State, context_schema=DictContext).add_node("ask", node)
        graph = graph.add_edge(START, "ask").compile()
        asyncio.run(graph.ainvoke({"question": "q", "answers": []}, context={"user_id": "app_dan"}))
    assert sent(fake_openrouter, "user") == ["app_dan", "app_dan"]
    assert all(request.body["stream"] for request in fake_openrouter.chat_requests)


def test_tool_with_tool_runtime_calls_the_model_itself(fake_openrouter, make_chat):
    llm = make_chat()
    seen: list[str | None] = []

    @tool
    def lookup(order_id: int, runtime: ToolRuntime[DataContext]) -> str:
        """Look up an order for the current user; the summary comes from the model."""
        seen.append(runtime.context.user_id)
        summary = llm.invoke(f"Summarise order {order_id}").content
        # A call given its own `configurable` still belongs to this run: the runtime context applies.
        again = llm.invoke("again", config={"configurable": {"session_id": "tool-session"}}).content
        return f"{summary[:20]} / {again[:20]}"

    agent = create_agent(llm, tools=[lookup], context_schema=DataContext)
    agent.invoke(QUESTION, context=DataContext(user_id="app_erin", session_id="s-erin"))
    asyncio.run(agent.ainvoke(QUESTION, context=DataContext(user_id="app_finn", session_id="s-finn")))
    assert seen == ["app_erin", "app_finn"]
    assert sent(fake_openrouter, "user") == ["app_erin"] * 4 + ["app_finn"] * 4
    # The tool's second call: configurable session beats the runtime context's.
    assert sent(fake_openrouter, "session_id") == (
        ["s-erin", "s-erin", "tool-session", "s-erin", "s-finn", "s-finn", "tool-session", "s-finn"]
    )


def test_subgraphs_see_the_parent_runs_context(fake_openrouter, make_chat):
    llm = make_chat()
    inner = _question_graph(llm, context_schema=None)

    def call_inner(state: State) -> dict[str, Any]:
        return inner.invoke(state)  # a subgraph invoked from inside a node

    parent = StateGraph(State, context_schema=DataContext)
    parent.add_node("inner_as_node", inner)  # a compiled subgraph as a node
    parent.add_node("inner_from_node", call_inner)
    parent.add_edge(START, "inner_as_node")
    parent.add_edge("inner_as_node", "inner_from_node")
    graph = parent.compile()
    graph.invoke({"question": "q", "answers": []}, context=DataContext(user_id="app_gus"))
    chunks = list(
        graph.stream(
            {"question": "q", "answers": []}, context=DataContext(user_id="app_hal"), stream_mode="updates",
            subgraphs=True,
        )
    )  # fmt: skip
    assert any(namespace for namespace, _update in chunks)  # subgraph updates were streamed
    asyncio.run(
        _collect(
            graph.astream(
                {"question": "q", "answers": []}, context=DataContext(user_id="app_ida"), stream_mode="messages",
                subgraphs=True,
            )
        )
    )  # fmt: skip
    assert sent(fake_openrouter, "user") == ["app_gus"] * 4 + ["app_hal"] * 4 + ["app_ida"] * 4


def test_a_subgraph_with_its_own_context_uses_it(fake_openrouter, make_chat):
    llm = make_chat()
    inner = _question_graph(llm, context_schema=DictContext)

    def call_inner(state: State) -> dict[str, Any]:
        return inner.invoke(state, context={"user_id": "app_inner"})

    graph = StateGraph(State, context_schema=DictContext).add_node("inner", call_inner)
    graph = graph.add_edge(START, "inner").compile()
    graph.invoke({"question": "q", "answers": []}, context={"user_id": "app_outer"})
    assert sent(fake_openrouter, "user") == ["app_inner", "app_inner"]


# -- resolution order ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "config", "context", "ambient", "expected"),
    [
        ({}, {"configurable": {"user_id": "conf"}}, {"user_id": "rt"}, None, "conf"),
        ({}, {"metadata": {"user_id": "meta"}}, {"user_id": "rt"}, None, "meta"),
        ({}, {"metadata": {"langfuse_user_id": "lf"}}, {"user_id": "rt"}, None, "lf"),
        ({"user": "explicit"}, {"configurable": {"user_id": "conf"}}, {"user_id": "rt"}, "ctx", "explicit"),
        ({}, None, {"user_id": "rt"}, "ctx", "rt"),
        ({}, None, {"session_id": "only-session"}, "ctx", "ctx"),
        ({}, None, None, "ctx", "ctx"),
        ({}, None, None, None, "model-default"),
    ],
    ids=[
        "configurable>runtime", "metadata>runtime", "langfuse>runtime", "explicit>all", "runtime>user_context",
        "context_without_user", "no_context", "model_default",
    ],
)  # fmt: skip
def test_order_around_the_runtime_context(fake_openrouter, make_chat, bound, config, context, ambient, expected):
    llm = make_chat(user="model-default")
    graph = _question_graph(llm.bind(**bound) if bound else llm, context_schema=None)
    with user_context(ambient):
        graph.invoke({"question": "q", "answers": []}, config=config, context=context)
    assert sent(fake_openrouter, "user") == [expected, expected]


def test_runtime_session_beats_thread_id_and_configurable_session_beats_runtime(fake_openrouter, make_chat):
    from langgraph.checkpoint.memory import InMemorySaver

    llm = make_chat()
    graph = StateGraph(State, context_schema=DictContext)
    graph.add_node("ask", lambda state: {"answers": [llm.invoke(state["question"]).content]})
    graph = graph.add_edge(START, "ask").compile(checkpointer=InMemorySaver())
    thread: Any = {"configurable": {"thread_id": "th-1"}}
    graph.invoke({"question": "q", "answers": []}, config=thread, context={"user_id": "u", "session_id": "rt-s"})
    graph.invoke({"question": "q", "answers": []}, config=thread, context={"user_id": "u"})
    both: Any = {"configurable": {"thread_id": "th-1", "session_id": "conf-s"}}
    graph.invoke({"question": "q", "answers": []}, config=both, context={"user_id": "u", "session_id": "rt-s"})
    assert sent(fake_openrouter, "session_id") == ["rt-s", "th-1", "conf-s"]


def test_custom_keys_read_from_the_runtime_context(fake_openrouter, make_chat):
    @dataclass
    class AccountContext:
        account: str
        conversation: str

    llm = make_chat(user_id_key="account", session_id_key="conversation")
    graph = StateGraph(State, context_schema=AccountContext)
    graph.add_node("ask", lambda state: {"answers": [llm.invoke(state["question"]).content]})
    graph = graph.add_edge(START, "ask").compile()
    graph.invoke({"question": "q", "answers": []}, context=AccountContext(account="acct-9", conversation="c-9"))
    assert (sent(fake_openrouter, "user"), sent(fake_openrouter, "session_id")) == (["acct-9"], ["c-9"])


def test_non_string_user_in_the_context_is_refused_before_sending(fake_openrouter, make_chat):
    from openrouter_attribution import UserIdError

    graph = _question_graph(make_chat(), context_schema=None)
    with pytest.raises(UserIdError, match="must be a str"):
        graph.invoke({"question": "q", "answers": []}, context={"user_id": 42})
    assert fake_openrouter.chat_requests == []


def test_missing_user_message_names_the_runtime_context(fake_openrouter, make_chat):
    from openrouter_attribution import MissingUserError

    graph = _question_graph(make_chat(require_user=True), context_schema=None)
    with pytest.raises(MissingUserError) as info:
        graph.invoke({"question": "q", "answers": []}, context={"session_id": "s"})
    assert "the LangGraph runtime context's 'user_id' (context=...)" in info.value.searched
    assert fake_openrouter.chat_requests == []
