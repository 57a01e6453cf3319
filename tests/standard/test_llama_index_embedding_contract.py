"""A contract suite for the LlamaIndex ``OpenRouterEmbedding`` (LlamaIndex has no standard test suite).

Every public embedding method must honour the same invariants, checked against the local server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding, similarity

from openrouter_attribution.llama_index import OpenRouterEmbedding

TEXT = "The quick brown fox jumps over the lazy dog"
OTHER = "Interest rates and bond yields"


def _one(model: OpenRouterEmbedding, method: str) -> list[float]:
    """The vector of ``TEXT`` through one public method."""
    calls: dict[str, Any] = {
        "get_query_embedding": lambda: model.get_query_embedding(TEXT),
        "aget_query_embedding": lambda: asyncio.run(model.aget_query_embedding(TEXT)),
        "get_text_embedding": lambda: model.get_text_embedding(TEXT),
        "aget_text_embedding": lambda: asyncio.run(model.aget_text_embedding(TEXT)),
        "get_text_embedding_batch": lambda: model.get_text_embedding_batch([OTHER, TEXT])[1],
        "aget_text_embedding_batch": lambda: asyncio.run(model.aget_text_embedding_batch([OTHER, TEXT]))[1],
    }
    return calls[method]()


METHODS = ["get_query_embedding", "aget_query_embedding", "get_text_embedding", "aget_text_embedding",
           "get_text_embedding_batch", "aget_text_embedding_batch"]  # fmt: skip


@pytest.fixture
def model(fake_openrouter) -> OpenRouterEmbedding:
    return OpenRouterEmbedding(api_base=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0,
                               dimensions=128, require_user=False)  # fmt: skip


def test_is_a_llama_index_embedding(model):
    assert isinstance(model, BaseEmbedding)
    assert model.class_name() == "openrouter_attribution.OpenRouterEmbedding"
    assert model.model_name == model.model


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_the_same_float_vector(model, method):
    reference = model.get_query_embedding(TEXT)
    vector = _one(model, method)
    assert isinstance(vector, list)
    assert len(vector) == 128
    assert all(type(value) is float for value in vector)
    assert vector == reference


def test_similarity_ranks_the_same_text_first(model):
    query = model.get_query_embedding(TEXT)
    same, other = model.get_text_embedding_batch([TEXT, OTHER])
    assert similarity(query, same) == pytest.approx(1.0)
    assert similarity(query, same) > similarity(query, other)


def test_empty_batch_returns_nothing_and_sends_nothing(model, fake_openrouter):
    assert model.get_text_embedding_batch([]) == []
    assert asyncio.run(model.aget_text_embedding_batch([])) == []
    assert fake_openrouter.requests == []
