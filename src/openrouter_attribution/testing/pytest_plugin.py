"""Pytest plugin: the ``fake_openrouter`` fixture.

Registered as a ``pytest11`` entry point, so it is active wherever
``openrouter-attribution`` is installed; no ``conftest.py`` import needed::

    def test_my_app_attributes_calls(fake_openrouter):
        client = openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key)
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"user": "app_42"},
        )
        assert fake_openrouter.last_request.body["user"] == "app_42"

One server is started per test session (starting is cheap, but one server keeps
the suite fast and its port stable) and :meth:`FakeOpenRouter.reset
<openrouter_attribution.testing.FakeOpenRouter.reset>` is called before each
test: every test sees no records, no generations, no queued faults, a cold
prompt cache, ``connections_opened == 0`` and the default ``latency``. After
the test, an unexpected server-side exception (a 500 answered by the fake
server itself) fails the test with its traceback.

Tests that need their own server (another API key, a fixed port) construct
:class:`~openrouter_attribution.testing.FakeOpenRouter` directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openrouter_attribution.testing.server import FakeOpenRouter

__all__ = ["fake_openrouter", "fake_openrouter_session"]


@pytest.fixture(scope="session")
def fake_openrouter_session() -> Iterator[FakeOpenRouter]:
    """The session-wide server behind :func:`fake_openrouter` (not reset between tests)."""
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def fake_openrouter(fake_openrouter_session: FakeOpenRouter) -> Iterator[FakeOpenRouter]:
    """A running :class:`~openrouter_attribution.testing.FakeOpenRouter`, reset for this test."""
    server = fake_openrouter_session
    server.reset()
    yield server
    errors = server.internal_errors
    server.reset()
    if errors:
        pytest.fail("FakeOpenRouter raised while serving this test:\n" + "\n".join(errors), pytrace=False)
