"""LangChain's standard embeddings integration suite, run against OpenRouterEmbeddings and the local server.

The suite has no capability flags and no test is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from openrouter_attribution.langchain import OpenRouterEmbeddings
from openrouter_attribution.testing import FakeOpenRouter

MODEL = "openai/text-embedding-3-small"
_SERVER: dict[str, FakeOpenRouter] = {}


@pytest.fixture(scope="module", autouse=True)
def server() -> Iterator[FakeOpenRouter]:
    """One local server for the module; the suite reads its address through ``embedding_model_params``."""
    with FakeOpenRouter() as fake:
        _SERVER["fake"] = fake
        yield fake
    _SERVER.clear()


class TestOpenRouterEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return OpenRouterEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        fake = _SERVER["fake"]
        return {
            "model": MODEL,
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "max_retries": 0,
            "require_user": False,
        }


def test_the_suite_reached_the_server(server: FakeOpenRouter) -> None:
    """Runs after the suite (same module): its calls went to the local server as embeddings requests."""
    requests = server.embeddings_requests
    assert len(requests) == 6  # two query tests of two calls, two document tests of one
    assert all(request.body["model"] == MODEL for request in requests)
