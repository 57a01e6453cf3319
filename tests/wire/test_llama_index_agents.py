"""Inside LlamaIndex agents, workflows and engines every LLM call carries the user of the run that started it."""

from __future__ import annotations

import asyncio
import re

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.react.output_parser import ReActOutputParser
from llama_index.core.agent.react.types import ActionReasoningStep, BaseReasoningStep, ResponseReasoningStep
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.tools import FunctionTool

from openrouter_attribution import MissingUserError, user_context
from tests.wire.llama_index_helpers import ADD_TOOL, MESSAGES, make_llm, sent

RUNS = 100
USERS = ("u-alice", "u-bob")


class ScriptedReActParser(ReActOutputParser):
    """Reads the local server's echo ("... Reply to: CALL add 2 3") as a ReAct step.

    The fake model repeats the last user message; ReAct's observation comes back as a user
    message ("Observation: 5"), which ends the run. The LLM calls themselves are real.
    """

    def parse(self, output: str, is_streaming: bool = False) -> BaseReasoningStep:
        if "Observation:" in output:
            return ResponseReasoningStep(thought="done", response=output, is_streaming=is_streaming)
        match = re.search(r"CALL (\w+) (\d+) (\d+)", output)
        if match is None:
            return ResponseReasoningStep(thought="no tool", response=output, is_streaming=is_streaming)
        name, a, b = match.groups()
        return ActionReasoningStep(thought="use a tool", action=name, action_input={"a": int(a), "b": int(b)})


def _agent(kind: str, llm):
    if kind == "function":
        return FunctionAgent(tools=[ADD_TOOL], llm=llm, system_prompt="You add numbers.")
    return ReActAgent(tools=[ADD_TOOL], llm=llm, output_parser=ScriptedReActParser())


def _check_runs(server, expected_runs: int) -> None:
    """Every request carries the user of its run; runs are told apart by their session id."""
    by_session: dict[str, list[str | None]] = {}
    for request in server.chat_requests:
        by_session.setdefault(request.body.get("session_id"), []).append(request.body.get("user"))
    assert None not in by_session, "a request lost its run's session"
    assert len(by_session) == expected_runs
    for session, users in by_session.items():
        run = int(session.removeprefix("run-"))
        assert users == [USERS[run % 2]] * 2, (session, users)  # two calls: tool call, then the answer


@pytest.mark.parametrize("kind", ["function", "react"])
def test_concurrent_runs_keep_their_users(fake_openrouter, kind):
    agent = _agent(kind, make_llm(fake_openrouter))

    async def one_run(run: int) -> str:
        user, session = USERS[run % 2], f"run-{run}"
        if run % 4 < 2:  # half the runs attribute with user_context, half with instrument_tags
            with user_context(user, session_id=session):
                handler = agent.run("CALL add 2 3: please add 2 and 3")
        else:
            with instrument_tags({"user_id": user, "session_id": session}):
                handler = agent.run("CALL add 2 3: please add 2 and 3")
        if run % 3 == 0:  # some runs are streamed
            async for _ in handler.stream_events():
                pass
        return str(await handler)

    async def main() -> list[str]:
        return await asyncio.gather(*(one_run(run) for run in range(RUNS)))

    answers = asyncio.run(main())
    assert all("5" in answer for answer in answers)
    _check_runs(fake_openrouter, RUNS)
    tool_results = [r.body["messages"][-1] for r in fake_openrouter.chat_requests if len(r.body["messages"]) > 2]
    assert len(tool_results) == RUNS
    assert all("5" in str(m["content"]) for m in tool_results)


def test_multi_agent_handoff_keeps_the_user(fake_openrouter):
    llm = make_llm(fake_openrouter)
    router = FunctionAgent(
        name="router", description="Routes requests.", llm=llm, can_handoff_to=["calc"], system_prompt="You route."
    )
    calc = FunctionAgent(name="calc", description="Adds numbers.", llm=llm, tools=[ADD_TOOL], system_prompt="You add.")
    workflow = AgentWorkflow(agents=[router, calc], root_agent="router")

    async def main() -> None:
        with user_context("u-handoff", session_id="s-handoff"):
            await workflow.run('handoff to "calc" to add 2 and 3')

    asyncio.run(main())
    system_prompts = {r.body["messages"][0]["content"] for r in fake_openrouter.chat_requests}
    assert {"You route.", "You add."} <= system_prompts, "both agents called the LLM"
    assert set(sent(fake_openrouter, "user")) == {"u-handoff"}
    assert set(sent(fake_openrouter, "session_id")) == {"s-handoff"}


def test_tools_that_call_the_llm(fake_openrouter):
    llm = make_llm(fake_openrouter)

    async def summarize(text: str) -> str:
        """Summarize a text with the LLM."""
        return (await llm.acomplete(f"Summarize: {text}")).text

    def shout(text: str) -> str:
        """Shout a text, with the LLM (a sync tool: LlamaIndex runs it in a worker thread)."""
        return llm.complete(f"Shout: {text}").text

    agent = FunctionAgent(llm=llm, tools=[FunctionTool.from_defaults(summarize), FunctionTool.from_defaults(shout)])

    async def main() -> None:
        with instrument_tags({"user_id": "u-tags"}):
            await agent.run('summarize and shout "hello"')
        with user_context("u-ctx"):
            await agent.run('summarize and shout "hello"')

    asyncio.run(main())
    prompts = [(r.body["messages"][-1]["content"], r.body["user"]) for r in fake_openrouter.chat_requests]
    inner = [(p, u) for p, u in prompts if isinstance(p, str) and p.startswith(("Summarize:", "Shout:"))]
    assert len(inner) == 4
    assert sent(fake_openrouter, "user") == ["u-tags"] * 4 + ["u-ctx"] * 4


def test_query_and_chat_engines(fake_openrouter):
    llm = make_llm(fake_openrouter)
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France.")], embed_model=MockEmbedding(embed_dim=8)
    )
    with user_context("u-query"):
        answer = index.as_query_engine(llm=llm).query("What is the capital of France?")
        streaming = index.as_query_engine(llm=llm, streaming=True).query("Capital?")
    assert str(answer)
    assert "".join(streaming.response_gen)  # consumed after the block: the user was captured at the call
    chat_engine = index.as_chat_engine(llm=llm, chat_mode="condense_plus_context")

    async def achat() -> None:
        with instrument_tags({"user_id": "u-chat"}):
            await chat_engine.achat("Tell me about Paris")

    with user_context("u-chat"):
        chat_engine.chat("Tell me about France")
        chat_engine.stream_chat("And Paris?").print_response_stream()
    asyncio.run(achat())
    users = sent(fake_openrouter, "user")
    assert users[:2] == ["u-query", "u-query"]
    assert set(users[2:]) == {"u-chat"}
    assert len(users) > 4


def test_streams_consumed_outside_the_block_keep_the_callers_user(fake_openrouter):
    """The attribution is resolved when a stream is requested, not when it is first read.

    Web frameworks read a returned generator after the handler (and its ``user_context``) exited,
    often in another thread or task; resolving lazily would send those calls without a user.
    """
    llm = make_llm(fake_openrouter)
    with user_context("u-sync"):
        chat_gen = llm.stream_chat(MESSAGES)
        complete_gen = llm.stream_complete("hi")
    assert list(chat_gen)
    assert list(complete_gen)

    async def main() -> None:
        with user_context("u-async"):
            stream = await llm.astream_chat(MESSAGES)
        async for _ in stream:
            pass
        with user_context("u-other"):  # read in another task and context
            stream = await llm.astream_chat(MESSAGES)
        await asyncio.create_task(_read(stream))

    asyncio.run(main())
    assert sent(fake_openrouter, "user") == ["u-sync", "u-sync", "u-async", "u-other"]


async def _read(stream) -> None:
    async for _ in stream:
        pass


def test_run_user_is_fixed_when_the_run_starts(fake_openrouter):
    """A run belongs to the context ``agent.run()`` was called in, wherever its handler is awaited."""
    agent = _agent("function", make_llm(fake_openrouter, require_user=True))

    async def main() -> None:
        with user_context("u-start"):
            handler = agent.run("add 2 and 3")
        with user_context("u-elsewhere"):
            await asyncio.create_task(_await(handler))
        late = agent.run("add 2 and 3")  # started outside any user_context
        with user_context("u-too-late"), pytest.raises(MissingUserError):
            await late

    asyncio.run(main())
    assert sent(fake_openrouter, "user") == ["u-start", "u-start"]


async def _await(handler) -> None:
    await handler


@pytest.mark.parametrize("reader", ["same-thread", "other-thread", "async"])
def test_streaming_query_read_after_the_block(fake_openrouter, reader):
    """LlamaIndex's refine synthesizer only calls the LLM when its stream is first read.

    Without the stream binder (``llama_index/context.py``) these calls went out without a user.
    """
    import threading

    llm = make_llm(fake_openrouter, require_user=True)
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France.")], embed_model=MockEmbedding(embed_dim=8)
    )
    engine = index.as_query_engine(llm=llm, streaming=True)
    tokens: list[str] = []
    if reader == "async":

        async def main() -> None:
            with user_context("u-stream", session_id="s-stream"):
                response = await engine.aquery("Capital?")
            tokens.extend([token async for token in response.async_response_gen()])

        asyncio.run(main())
    else:
        with user_context("u-stream", session_id="s-stream"):
            response = engine.query("Capital?")
        if reader == "other-thread":
            thread = threading.Thread(target=lambda: tokens.extend(response.response_gen))
            thread.start()
            thread.join()
        else:
            tokens.extend(response.response_gen)
    assert "".join(tokens)
    assert sent(fake_openrouter, "user") == ["u-stream"]
    assert sent(fake_openrouter, "session_id") == ["s-stream"]
