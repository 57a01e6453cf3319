"""200+ concurrent clients over keep-alive connections: every request answered and recorded intact."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import openai

from openrouter_attribution.testing import FakeOpenRouter

CONCURRENCY = 200


async def test_200_concurrent_async_requests_are_all_answered_and_recorded(fake_openrouter):
    async with openai.AsyncOpenAI(
        base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0, timeout=30
    ) as client:

        async def ask(i: int):
            if i % 4 == 0:
                stream = await client.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": f"question {i}"}],
                    user=f"user-{i}",
                    stream=True,
                    extra_body={"session_id": f"session-{i}"},
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            reply = await client.chat.completions.create(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": f"question {i}"}],
                user=f"user-{i}",
                extra_body={"session_id": f"session-{i}"},
            )
            return reply.choices[0].message.content

        answers = await asyncio.gather(*(ask(i) for i in range(CONCURRENCY)))
    assert answers == [f"[openai/gpt-4o-mini] Reply to: question {i}" for i in range(CONCURRENCY)]
    records = fake_openrouter.chat_requests
    assert len(records) == CONCURRENCY
    by_user = {r.body["user"]: r.body for r in records}
    assert set(by_user) == {f"user-{i}" for i in range(CONCURRENCY)}
    for i in range(CONCURRENCY):
        body = by_user[f"user-{i}"]
        assert body["session_id"] == f"session-{i}"
        assert body["messages"] == [{"role": "user", "content": f"question {i}"}]
    generations = fake_openrouter.generations
    assert len(generations) == CONCURRENCY
    assert {g["user"] for g in generations.values()} == set(by_user)
    assert fake_openrouter.internal_errors == []


def test_threaded_clients_with_keep_alive_and_no_leaks():
    before = {t for t in threading.enumerate() if t.name.startswith("FakeOpenRouter")}
    with FakeOpenRouter() as fake:
        with openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=30) as client:

            def ask(i: int) -> str:
                reply = client.chat.completions.create(
                    model="anthropic/claude-3.5-sonnet", messages=[{"role": "user", "content": f"q{i}"}]
                )
                return reply.choices[0].message.content

            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = list(pool.map(ask, range(CONCURRENCY)))
        assert answers == [f"[anthropic/claude-3.5-sonnet] Reply to: q{i}" for i in range(CONCURRENCY)]
        assert len(fake.chat_requests) == CONCURRENCY
        assert fake.connections_opened <= 16 + 4  # pooled keep-alive connections, not one per request
    assert {t for t in threading.enumerate() if t.name.startswith("FakeOpenRouter")} <= before
