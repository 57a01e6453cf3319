"""Fixtures for tests that talk to the local OpenRouter-compatible server over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from openrouter_attribution import errors

MODEL = "openai/gpt-4o-mini"

# Every HTTP-status fault the local server can inject, with the error both models must raise for it.
STATUS_FAULTS = [
    ("401", errors.AuthenticationError),
    ("402", errors.InsufficientCreditsError),
    ("403", errors.ModerationError),
    ("408", errors.RequestTimeoutError),
    ("429", errors.RateLimitError),
    ("502", errors.ProviderUnavailableError),
    ("503", errors.ProviderUnavailableError),
]


@pytest.fixture
def make_chat(fake_openrouter) -> Callable[..., Any]:
    """Build a LangChain ``ChatOpenRouter`` pointed at the local server.

    ``require_user=False`` unless a test asks otherwise: most wire tests are about something other
    than attribution (tests about attribution pass a user and assert what was sent), so they opt
    out of the default missing-user warning deliberately.
    """
    from openrouter_attribution.langchain import ChatOpenRouter

    def make(**kwargs: Any) -> ChatOpenRouter:
        params: dict[str, Any] = {
            "model": MODEL,
            "base_url": fake_openrouter.base_url,
            "api_key": fake_openrouter.api_key,
            "max_retries": 0,
            "require_user": False,
        }
        params.update(kwargs)
        return ChatOpenRouter(**params)

    return make


@pytest.fixture
def client(fake_openrouter) -> Iterator[Any]:
    """A plain ``openai.OpenAI`` client of the local server, without retries (tests of the server itself)."""
    import openai

    with openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0) as c:
        yield c


@pytest.fixture
def fresh_call_sites() -> Iterator[None]:
    """Forget which call sites were already warned about a missing user (one warning per site and process)."""
    from openrouter_attribution import missing_user

    saved = set(missing_user._WARNED_SITES)
    missing_user._WARNED_SITES.clear()
    yield
    missing_user._WARNED_SITES.clear()
    missing_user._WARNED_SITES.update(saved)


def sent(server: Any, field: str) -> list[Any]:
    """The value of ``field`` in every chat request the server recorded, in order."""
    return [request.body.get(field) for request in server.chat_requests]
