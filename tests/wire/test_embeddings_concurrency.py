"""40 users embedding at once, on threads and on asyncio, in both frameworks: zero wrong users."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.runnables import RunnableLambda
from llama_index.core.instrumentation.dispatcher import instrument_tags

from openrouter_attribution import user_context
from tests.wire.embeddings_helpers import make_lc_embeddings, make_li_embedding

USERS = [f"app_user_{i:02d}" for i in range(40)]
TEXTS_PER_USER = 3


def _texts(user: str) -> list[str]:
    return [f"{user} document {k}" for k in range(TEXTS_PER_USER)]


def _check(server) -> None:
    """Every request went out for the user whose texts it carries, and every user's texts went out."""
    requests = server.embeddings_requests
    seen: dict[str, list[str]] = {}
    for request in requests:
        owners = {text.split(" ", 1)[0] for text in request.body["input"]}
        assert owners == {request.body["user"]}, f"texts of {owners} sent as {request.body['user']}"
        assert request.body["session_id"] == f"s-{request.body['user']}"
        seen.setdefault(request.body["user"], []).extend(request.body["input"])
    assert {user: sorted(texts) for user, texts in seen.items()} == {user: _texts(user) for user in USERS}


@pytest.fixture
def slow_server(fake_openrouter):
    fake_openrouter.latency = 0.02  # keep many requests in flight at once
    return fake_openrouter


def test_langchain_threads_with_user_context(slow_server):
    embeddings = make_lc_embeddings(slow_server, batch_size=2)

    def work(user: str) -> int:
        with user_context(user, session_id=f"s-{user}"):
            return len(embeddings.embed_documents(_texts(user)))

    with ThreadPoolExecutor(max_workers=len(USERS)) as pool:
        assert list(pool.map(work, USERS)) == [TEXTS_PER_USER] * len(USERS)
    _check(slow_server)


def test_langchain_batch_with_one_config_per_user(slow_server):
    embeddings = make_lc_embeddings(slow_server, batch_size=2)
    runnable = RunnableLambda(lambda user: embeddings.embed_documents(_texts(user)))
    configs = [
        {"configurable": {"user_id": user, "session_id": f"s-{user}"}, "max_concurrency": len(USERS)} for user in USERS
    ]
    results = runnable.batch(USERS, config=configs)
    assert [len(vectors) for vectors in results] == [TEXTS_PER_USER] * len(USERS)
    _check(slow_server)


def test_langchain_asyncio(slow_server):
    embeddings = make_lc_embeddings(slow_server, batch_size=2)

    async def work(user: str) -> int:
        async with user_context(user, session_id=f"s-{user}"):
            return len(await embeddings.aembed_documents(_texts(user)))

    async def run() -> list[int]:
        return await asyncio.gather(*(work(user) for user in USERS))

    assert asyncio.run(run()) == [TEXTS_PER_USER] * len(USERS)
    _check(slow_server)


def test_llama_index_threads_with_instrument_tags(slow_server):
    embed_model = make_li_embedding(slow_server, embed_batch_size=2)

    def work(user: str) -> int:
        with instrument_tags({"user_id": user, "session_id": f"s-{user}"}):
            return len(embed_model.get_text_embedding_batch(_texts(user)))

    with ThreadPoolExecutor(max_workers=len(USERS)) as pool:
        assert list(pool.map(work, USERS)) == [TEXTS_PER_USER] * len(USERS)
    _check(slow_server)


def test_llama_index_asyncio_with_concurrent_workers(slow_server):
    embed_model = make_li_embedding(slow_server, embed_batch_size=1, num_workers=3)

    async def work(user: str) -> int:
        async with user_context(user, session_id=f"s-{user}"):
            return len(await embed_model.aget_text_embedding_batch(_texts(user)))

    async def run() -> list[int]:
        return await asyncio.gather(*(work(user) for user in USERS))

    assert asyncio.run(run()) == [TEXTS_PER_USER] * len(USERS)
    _check(slow_server)
