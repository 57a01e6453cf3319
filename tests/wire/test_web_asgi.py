"""A FastAPI app served by uvicorn on 127.0.0.1: every model call a request makes carries its client's user.

The app's chain and model talk to the local OpenRouter server; 50 clients with different users hit a
chain endpoint, a streaming endpoint, their sync variants (run in the server's thread pool) and an
endpoint whose work continues in background tasks after the response.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from openrouter_attribution import current_attribution, propagate
from openrouter_attribution.web import PropagatingExecutor, UserContextMiddleware, request_header

CLIENTS = 50
TOKENS = {f"token-{i}": f"app_user_{i}" for i in range(CLIENTS)}
"""What the app's authentication would establish: a verified token -> the account it belongs to."""


def identify(scope: Any) -> tuple[str, str | None] | None:
    authorization = request_header(scope, "authorization") or ""
    user = TOKENS.get(authorization.removeprefix("Bearer "))
    return None if user is None else (user, request_header(scope, "x-conversation"))


def build_app(llm: Any) -> FastAPI:
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm | StrOutputParser()
    pool = PropagatingExecutor(max_workers=4)
    app = FastAPI()
    app.state.tasks = set()
    app.state.pool = pool

    @app.get("/chain")
    async def chain_endpoint(q: str) -> dict[str, str]:
        return {"answer": await chain.ainvoke({"q": q})}

    @app.get("/chain-sync")
    def chain_sync(q: str) -> dict[str, str]:
        return {"answer": chain.invoke({"q": q})}

    @app.get("/stream")
    async def stream(q: str) -> StreamingResponse:
        async def body():
            async for piece in chain.astream({"q": q}):
                yield piece

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/stream-sync")
    def stream_sync(q: str) -> StreamingResponse:
        return StreamingResponse((piece for piece in chain.stream({"q": q})), media_type="text/plain")

    @app.post("/later")
    async def later(q: str, request: Request, background: BackgroundTasks) -> dict[str, str | None]:
        background.add_task(chain.ainvoke, {"q": f"background {q}"})
        background.add_task(chain.invoke, {"q": f"background-sync {q}"})
        task = asyncio.create_task(chain.ainvoke({"q": f"task {q}"}))
        request.app.state.tasks.add(task)
        task.add_done_callback(request.app.state.tasks.discard)
        pool.submit(chain.invoke, {"q": f"pool {q}"})
        return {"user": current_attribution().user}

    return app


class Served:
    """A uvicorn server running an ASGI app on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", limit_concurrency=500, backlog=256)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            self.thread.join(0.01)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()
        assert not self.thread.is_alive()


@pytest.fixture
def served(make_chat) -> Iterator[tuple[str, FastAPI]]:
    app = build_app(make_chat())
    app.add_middleware(UserContextMiddleware, identify=identify)
    with Served(app) as server:
        yield server.url, app
    app.state.pool.shutdown(wait=True)


def _client_of(request: Any) -> int:
    """Which client a recorded chat request was made for: the number in its prompt."""
    match = re.search(r"client-(\d+)", request.body["messages"][-1]["content"])
    assert match, request.body["messages"]
    return int(match.group(1))


async def _one_client(url: str, i: int) -> list[str]:
    headers = {"authorization": f"Bearer token-{i}", "x-conversation": f"conv-{i}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        answers = []
        for path in ("/chain", "/chain-sync"):
            response = await client.get(path, params={"q": f"question of client-{i}"})
            response.raise_for_status()
            answers.append(response.json()["answer"])
        for path in ("/stream", "/stream-sync"):
            async with client.stream("GET", path, params={"q": f"stream for client-{i}"}) as response:
                response.raise_for_status()
                answers.append("".join([piece async for piece in response.aiter_text()]))
        return answers


def test_50_concurrent_clients_each_get_their_own_user(fake_openrouter, served):
    url, _app = served

    async def run() -> list[list[str]]:
        return await asyncio.gather(*(_one_client(url, i) for i in range(CLIENTS)))

    answers = asyncio.run(run())
    requests = fake_openrouter.chat_requests
    assert len(requests) == CLIENTS * 4
    wrong = [
        (r.body.get("user"), r.body.get("session_id"), _client_of(r))
        for r in requests
        if (r.body.get("user"), r.body.get("session_id")) != (f"app_user_{_client_of(r)}", f"conv-{_client_of(r)}")
    ]
    assert wrong == []
    assert sum(1 for r in requests if r.body.get("stream")) == CLIENTS * 2
    for i, (chain, chain_sync, streamed, streamed_sync) in enumerate(answers):
        assert f"question of client-{i}" in chain
        assert chain == chain_sync
        assert f"stream for client-{i}" in streamed
        assert streamed == streamed_sync


def test_background_tasks_asyncio_tasks_and_pool_work_keep_the_requests_user(fake_openrouter, served):
    url, _app = served

    async def run() -> list[Any]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/later", params={"q": f"client-{i}"}, headers={"authorization": f"Bearer token-{i}"})
                    for i in range(10)
                )
            )
        return [response.json()["user"] for response in responses]

    assert asyncio.run(run()) == [f"app_user_{i}" for i in range(10)]
    requests = fake_openrouter.wait_for_requests(40, timeout=30, chat_only=True)
    assert len(requests) == 40
    assert {(r.body["user"], _client_of(r)) for r in requests} == {(f"app_user_{i}", i) for i in range(10)}
    assert all(r.body["user"] == f"app_user_{_client_of(r)}" for r in requests)
    kinds = sorted(r.body["messages"][-1]["content"].split()[0] for r in requests)
    assert kinds == sorted(["background", "background-sync", "task", "pool"] * 10)


def test_unknown_caller_sends_no_user(fake_openrouter, served):
    url, _app = served
    response = httpx.get(f"{url}/chain", params={"q": "anonymous client-0"}, timeout=30)
    assert response.status_code == 200
    (request,) = fake_openrouter.chat_requests
    assert "user" not in request.body


def test_plain_threads_lose_the_user_and_propagate_keeps_it(fake_openrouter, make_chat):
    """Work handed to a bare ThreadPoolExecutor from a request: only propagate() keeps its user."""
    from concurrent.futures import ThreadPoolExecutor

    llm = make_chat()
    pool = ThreadPoolExecutor(max_workers=1)
    pool.submit(lambda: None).result()  # the worker started before any request, as in a long-running app
    app = FastAPI()

    @app.get("/report")
    async def report(q: str) -> dict[str, int]:
        futures = [pool.submit(llm.invoke, f"bare {q}"), pool.submit(propagate(llm.invoke), f"propagated {q}")]
        await asyncio.gather(*(asyncio.wrap_future(future) for future in futures))
        return {"calls": len(futures)}

    with Served(UserContextMiddleware(app, identify=identify)) as server:
        headers = {"authorization": "Bearer token-3"}
        response = httpx.get(f"{server.url}/report", params={"q": "client-3"}, headers=headers, timeout=30)
    pool.shutdown()
    assert response.json() == {"calls": 2}
    users = {r.body["messages"][-1]["content"].split()[0]: r.body.get("user") for r in fake_openrouter.chat_requests}
    assert users == {"bare": None, "propagated": "app_user_3"}
