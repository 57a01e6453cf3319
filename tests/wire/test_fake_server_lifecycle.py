"""FakeOpenRouter's lifecycle: start/stop, addresses, keep-alive reuse, no leaked threads, the fixture."""

from __future__ import annotations

import doctest
import http.client
import threading

import openai
import pytest

from openrouter_attribution.testing import FakeOpenRouter, server

MESSAGES = [{"role": "user", "content": "Hello!"}]


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("FakeOpenRouter")]


def test_context_manager_serves_and_stops():
    with FakeOpenRouter() as fake:
        assert fake.running
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/api/v1"
        assert fake.url == f"http://127.0.0.1:{fake.port}"
        assert fake.api_key == "sk-or-fake-key"
        with openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0) as client:
            reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
        assert reply.choices[0].message.content == "[openai/gpt-4o-mini] Reply to: Hello!"
    assert not fake.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.port


def test_explicit_start_stop_is_idempotent_and_restartable():
    fake = FakeOpenRouter(api_key="sk-or-other")
    fake.start()
    with pytest.raises(RuntimeError, match="already running"):
        fake.start()
    fake.stop()
    fake.stop()
    fake.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
        conn.request("GET", "/api/v1/models", headers={"Authorization": "Bearer sk-or-other"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        fake.stop()


def test_stop_closes_idle_keep_alive_connections_and_joins_threads():
    before = set(_server_threads())
    fake = FakeOpenRouter().start()
    clients = [openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0) for _ in range(3)]
    for client in clients:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert fake.connections_opened == 3
    fake.stop()  # the clients still hold their idle keep-alive connections
    assert set(_server_threads()) <= before
    for client in clients:
        client.close()


def test_sequential_requests_reuse_one_keep_alive_connection(fake_openrouter):
    with openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0) as client:
        for _ in range(5):
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
        client.models.list()
    assert len(fake_openrouter.requests) == 6
    assert fake_openrouter.connections_opened == 1


def test_fixture_starts_each_test_clean(fake_openrouter):
    assert fake_openrouter.running
    assert fake_openrouter.requests == []
    assert fake_openrouter.generations == {}
    assert fake_openrouter.connections_opened == 0
    assert fake_openrouter.latency == 0.0


def test_reset_clears_records_generations_faults_counters_and_latency(fake_openrouter):
    fake_openrouter.latency = 0.01
    fake_openrouter.inject_fault("503", count=3)
    with openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
        fake_openrouter.reset()
        assert (fake_openrouter.requests, fake_openrouter.connections_opened) == ([], 0)
        reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert list(fake_openrouter.generations) == [reply.id]
    assert fake_openrouter.latency == 0.0


def test_a_request_that_outlives_a_reset_leaves_no_generation_behind():
    """A client that gave up on a slow answer before reset(): the answer finishes after it, unrecorded."""
    fake = FakeOpenRouter().start()
    try:
        headers = {"X-Fake-Fault": "slow-first-byte", "X-Fake-Delay-Ms": "400"}
        client = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=0.1)
        with client, pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, extra_headers=headers)
        fake.reset()
    finally:
        fake.stop()  # joins the connection thread, which finished the slow answer after the reset
    assert fake.generations == {}
    assert fake.requests == []


def test_class_docstring_example_runs():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(server.FakeOpenRouter, "FakeOpenRouter", globs={}):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.parametrize("module", ["recording", "schema_values", "catalog"])
def test_module_doctests_run(module):
    import importlib

    results = doctest.testmod(importlib.import_module(f"openrouter_attribution.testing.{module}"))
    assert results.failed == 0
    assert results.attempted > 0


def test_the_server_imports_no_framework_and_no_library_model():
    import subprocess
    import sys

    forbidden = ("langchain", "langchain_core", "llama_index", "openai", "openrouter")
    library = tuple(f"openrouter_attribution.{name}" for name in ("langchain", "llama_index", "client"))
    code = (
        "import sys, openrouter_attribution.testing, openrouter_attribution.testing.pytest_plugin\n"
        f"print([m for m in sys.modules if m.split('.')[0] in {forbidden!r} or m.startswith({library!r})])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
