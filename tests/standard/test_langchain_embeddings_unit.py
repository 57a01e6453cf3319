"""LangChain's standard embeddings unit suite (no network) run against OpenRouterEmbeddings."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_tests.unit_tests import EmbeddingsUnitTests

from openrouter_attribution.langchain import OpenRouterEmbeddings

MODEL = "openai/text-embedding-3-small"
# A fixed, unused local address: unit tests never send a request.
BASE_URL = "http://127.0.0.1:9/api/v1"


class TestOpenRouterEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return OpenRouterEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MODEL, "base_url": BASE_URL, "api_key": "sk-or-unit-test"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"OPENROUTER_API_KEY": "sk-or-from-env", "OPENROUTER_BASE_URL": BASE_URL},
            {"model": MODEL, "dimensions": 256},
            {"api_key": "sk-or-from-env", "base_url": BASE_URL, "dimensions": 256},
        )
