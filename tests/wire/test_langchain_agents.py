"""Inside chains and agents, every model call carries the user of the invocation that started it."""

from __future__ import annotations

import asyncio
from collections import Counter

from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnableParallel
from langchain_core.tools import tool

from openrouter_attribution import user_context
from tests.wire.conftest import sent


def _lookup_tool(llm):
    @tool
    def lookup(order_id: int) -> str:
        """Look up an order; asks the model to summarise it (a tool that itself calls the model)."""
        summary = llm.invoke(f"Summarise order {order_id}")
        return f"order {order_id}: {summary.content[:30]}"

    return lookup


def test_create_agent_with_nested_model_call(fake_openrouter, make_chat):
    from langchain.agents import create_agent

    llm = make_chat()
    agent = create_agent(llm, tools=[_lookup_tool(llm)])
    for user in ("app_alice", "app_bob"):
        agent.invoke(
            {"messages": [("human", "Where is order 7? use lookup")]},
            config={"configurable": {"user_id": user}},
        )
    users = sent(fake_openrouter, "user")
    # Per run: the agent's tool call, the tool's own model call, the agent's final answer.
    assert users == ["app_alice"] * 3 + ["app_bob"] * 3


def test_langgraph_prebuilt_react_agent_under_user_context(fake_openrouter, make_chat):
    from langgraph.prebuilt import create_react_agent

    llm = make_chat()
    agent = create_react_agent(llm, tools=[_lookup_tool(llm)])
    with user_context("app_carol", session_id="support-1"):
        agent.invoke({"messages": [("human", "Where is order 9? use lookup")]})
    assert sent(fake_openrouter, "user") == ["app_carol"] * 3
    assert sent(fake_openrouter, "session_id") == ["support-1"] * 3


def test_langgraph_thread_id_is_the_session(fake_openrouter, make_chat):
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(make_chat(), tools=[], checkpointer=InMemorySaver())
    agent.invoke({"messages": [("human", "hi")]}, config={"configurable": {"thread_id": "th-42", "user_id": "u1"}})
    assert sent(fake_openrouter, "session_id") == ["th-42"]
    assert sent(fake_openrouter, "user") == ["u1"]


def test_parallel_branches_and_batch_threads(fake_openrouter, make_chat):
    llm = make_chat()
    chain = RunnableParallel(a=llm, b=RunnableLambda(lambda x, config: llm.invoke(x, config=config)))
    configs: list[RunnableConfig] = [{"configurable": {"user_id": f"u{i}"}, "max_concurrency": 4} for i in range(8)]
    chain.batch([f"q{i}" for i in range(8)], config=configs)
    by_prompt = {r.body["messages"][-1]["content"]: r.body["user"] for r in fake_openrouter.chat_requests}
    assert len(fake_openrouter.chat_requests) == 16
    assert by_prompt == {f"q{i}": f"u{i}" for i in range(8)}
    assert Counter(sent(fake_openrouter, "user")) == {f"u{i}": 2 for i in range(8)}


def test_user_context_reaches_batch_worker_threads(fake_openrouter, make_chat):
    with user_context("ctx-user"):
        make_chat().batch([f"q{i}" for i in range(6)], config={"max_concurrency": 3})
    assert sent(fake_openrouter, "user") == ["ctx-user"] * 6


def test_200_concurrent_ainvokes_with_distinct_users(fake_openrouter, make_chat):
    llm = make_chat()

    async def one(i: int) -> None:
        if i % 2:
            await llm.ainvoke(f"question {i}", config={"configurable": {"user_id": f"user-{i}"}})
        else:
            async with user_context(f"user-{i}"):
                await llm.ainvoke(f"question {i}")

    async def run() -> None:
        await asyncio.gather(*(one(i) for i in range(200)))

    asyncio.run(run())
    requests = fake_openrouter.chat_requests
    assert len(requests) == 200
    wrong = [r for r in requests if r.body.get("user") != "user-" + r.body["messages"][-1]["content"].split()[-1]]
    assert wrong == []
