"""LangGraph Platform's authenticated user goes out, whatever the client put in its config or context.

LangGraph Server with custom auth puts the authenticated identity into every run's config as
``configurable["langgraph_auth_user_id"]`` (and the user object as ``["langgraph_auth_user"]``); the
rest of ``configurable`` and the runtime context come from the client's request body. These tests
build the config the server builds and run the graph as the server runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from openrouter_attribution import UsageLedger, user_context
from openrouter_attribution.langchain import UsageCallbackHandler
from tests.wire.conftest import sent
from tests.wire.test_langgraph_runtime import QUESTION, DataContext, _lookup


def platform_config(identity: str, **client_configurable: Any) -> dict[str, Any]:
    """A run config as LangGraph Server builds it: the client's configurable plus the auth entries."""
    user = {"identity": identity, "display_name": identity, "is_authenticated": bool(identity), "permissions": []}
    return {
        "configurable": {
            **client_configurable,
            "langgraph_auth_user": user,
            "langgraph_auth_user_id": identity,
            "langgraph_auth_permissions": [],
            "assistant_id": "a-1",
            "graph_id": "agent",
        }
    }


def _agent(make_chat):
    llm = make_chat()
    return create_agent(llm, tools=[_lookup(llm)], context_schema=DataContext)


STYLES = {
    "invoke": lambda g, cfg, ctx: g.invoke(QUESTION, config=cfg, context=ctx),
    "ainvoke": lambda g, cfg, ctx: asyncio.run(g.ainvoke(QUESTION, config=cfg, context=ctx)),
    "stream": lambda g, cfg, ctx: list(g.stream(QUESTION, config=cfg, context=ctx, stream_mode="updates")),
    "astream": lambda g, cfg, ctx: asyncio.run(
        _drain(g.astream(QUESTION, config=cfg, context=ctx, stream_mode="messages"))
    ),
}


async def _drain(stream) -> list[Any]:
    return [item async for item in stream]


@pytest.mark.parametrize("style", STYLES)
def test_authenticated_identity_beats_what_the_client_sent(fake_openrouter, make_chat, style):
    agent = _agent(make_chat)
    config = platform_config("app_alice", user_id="app_mallory", session_id="s-client", thread_id="th-1")
    STYLES[style](agent, config, DataContext(user_id="app_victim", session_id="s-context"))
    assert sent(fake_openrouter, "user") == ["app_alice"] * 3
    # The identity is a user, not a session: the session still comes from the run.
    assert sent(fake_openrouter, "session_id") == ["s-client"] * 3


def test_empty_identity_means_not_authenticated_and_the_next_source_applies(fake_openrouter, make_chat):
    agent = _agent(make_chat)
    agent.invoke(QUESTION, config=platform_config("", user_id="app_conf"), context=DataContext(user_id="app_rt"))
    agent.invoke(QUESTION, config=platform_config(""), context=DataContext(user_id="app_rt"))
    with user_context("app_ctx"):
        agent.invoke(QUESTION, config=platform_config(""))
    assert sent(fake_openrouter, "user") == ["app_conf"] * 3 + ["app_rt"] * 3 + ["app_ctx"] * 3


def test_empty_identity_with_nothing_else_sends_no_user(fake_openrouter, make_chat):
    _agent(make_chat).invoke(QUESTION, config=platform_config(""))
    assert sent(fake_openrouter, "user") == [None] * 3


def test_identity_beats_user_context_and_the_model_default(fake_openrouter, make_chat):
    llm = make_chat(user="app_default")
    agent = create_agent(llm, tools=[_lookup(llm)])
    with user_context("app_ctx"):
        agent.invoke(QUESTION, config=platform_config("app_auth"))
    assert sent(fake_openrouter, "user") == ["app_auth"] * 3


def test_the_apps_explicit_user_beats_the_identity(fake_openrouter, make_chat):
    llm = make_chat()
    agent = create_agent(llm.bind(user="app_service"), tools=[])
    agent.invoke({"messages": [("human", "hi")]}, config=platform_config("app_auth"))
    assert sent(fake_openrouter, "user") == ["app_service"]


def test_missing_user_message_lists_every_place_in_resolution_order(fake_openrouter, make_chat):
    from openrouter_attribution import MissingUserError

    with pytest.raises(MissingUserError) as info:
        make_chat(require_user=True).invoke("hi", config=platform_config(""))
    assert info.value.searched == (
        "the call's user= argument (or .bind(user=...))",
        "config['configurable']['langgraph_auth_user_id'] (LangGraph Platform)",
        "config['configurable']['user_id']",
        "config['metadata']['user_id']",
        "config['metadata']['langfuse_user_id']",
        "the LangGraph runtime context's 'user_id' (context=...)",
        "user_context()",
        "the model's `user` field",
    )
    assert "langgraph_auth_user_id" in str(info.value)
    assert fake_openrouter.chat_requests == []


# -- the usage handler reads the same layers ----------------------------------------------------


class State(TypedDict, total=False):
    question: str
    answer: str


def _graph_with_both_models(chat, handler):
    """A node that calls this library's model and a model it did not build, both with the handler."""
    other = GenericFakeChatModel(messages=iter([AIMessage(f"fake {i}") for i in range(20)]))

    def node(state: State) -> State:
        chat.invoke(state["question"], config={"callbacks": [handler]})
        return {"answer": str(other.invoke(state["question"], config={"callbacks": [handler]}).content)}

    return StateGraph(State, context_schema=DataContext).add_node("ask", node).add_edge(START, "ask").compile()


@pytest.mark.parametrize(
    ("config", "context", "ambient"),
    [
        (platform_config("app_auth", user_id="app_client"), DataContext(user_id="app_rt", session_id="s-rt"), None),
        (platform_config("", user_id="app_client", session_id="s-conf"), DataContext(user_id="app_rt"), None),
        ({"configurable": {"thread_id": "th-9"}}, DataContext(user_id="app_rt"), "app_ctx"),
        ({"metadata": {"user_id": "app_meta"}}, DataContext(user_id="app_rt", session_id="s-rt"), "app_ctx"),
        (None, None, "app_ctx"),
    ],
    ids=["authenticated", "empty_identity", "runtime_with_thread", "metadata_over_runtime", "user_context"],
)
def test_usage_handler_attributes_like_the_model(fake_openrouter, make_chat, config, context, ambient):
    with UsageLedger(":memory:") as ledger:
        handler = UsageCallbackHandler(ledger)
        graph = _graph_with_both_models(make_chat(), handler)
        with user_context(ambient):
            graph.invoke({"question": "q"}, config=config, context=context)
        records = {record.model_requested: record for record in ledger.records()}
    (request,) = fake_openrouter.chat_requests
    ours, theirs = records["openai/gpt-4o-mini"], records[None]
    assert request.body.get("user") is not None
    assert (ours.user, ours.session_id) == (request.body.get("user"), request.body.get("session_id"))
    assert (theirs.user, theirs.session_id) == (request.body.get("user"), request.body.get("session_id"))


def test_usage_handler_records_every_agent_call_with_the_authenticated_user(fake_openrouter, make_chat):
    with UsageLedger(":memory:") as ledger:
        agent = _agent(make_chat)
        config: Any = {**platform_config("app_auth", session_id="s-1"), "callbacks": [UsageCallbackHandler(ledger)]}
        agent.invoke(QUESTION, config=config, context=DataContext(user_id="app_client"))
        recorded = [(record.user, record.session_id) for record in ledger.records()]
    assert len(fake_openrouter.chat_requests) == 3
    assert recorded == [("app_auth", "s-1")] * 3
