"""``OpenRouterEmbedding``: a LlamaIndex embedding model that attributes every request to its end-user."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import ConfigDict, Field

from openrouter_attribution.client import Invoker, Prepared
from openrouter_attribution.embedding_options import EmbeddingOptions
from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.llama_index.context import tag_attribution
from openrouter_attribution.llama_index.fields import LlamaIndexFields
from openrouter_attribution.wire.embeddings import DEFAULT_BATCH_SIZE, MAX_INPUTS_PER_REQUEST

__all__ = ["OpenRouterEmbedding"]


def _same_setting(data: dict[str, Any], alias: str, name: str) -> None:
    """Accept LlamaIndex's spelling ``alias`` of our field ``name`` (both must agree when both are given)."""
    if alias in data:
        value = data.pop(alias)
        if data.get(name, value) != value:
            raise ConfigurationError(f"Pass either {alias} or {name} (they are the same setting), not both.")
        data[name] = value


class OpenRouterEmbedding(BaseEmbedding, LlamaIndexFields, EmbeddingOptions):  # type: ignore[misc]
    """OpenRouter embeddings for LlamaIndex, attributing every request to the end-user it serves.

    The end-user is resolved per call, first match wins: :func:`~openrouter_attribution.user_context`
    > LlamaIndex's ``instrument_tags({"user_id": ..., "session_id": ...})`` (key names set by
    ``user_id_tag`` and ``session_id_tag``) > the model's own ``user`` / ``session_id`` fields. Both
    context sources reach the embeddings of index construction (``VectorStoreIndex(...)``) and of
    retrieval in query engines, sync and async. ``get_text_embedding_batch`` sends
    ``embed_batch_size`` texts per request; every request gets its own usage record in ``ledger``.

    Examples:
        >>> from openrouter_attribution import user_context
        >>> from openrouter_attribution.llama_index import OpenRouterEmbedding
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server:
        ...     embed_model = OpenRouterEmbedding(model="openai/text-embedding-3-small", api_base=server.base_url,
        ...                                       api_key=server.api_key)
        ...     with user_context("app_42", session_id="docs-1"):
        ...         vectors = embed_model.get_text_embedding_batch(["a cat", "a kitten"])
        ...     body = server.embeddings_requests[-1].body
        ...     (len(vectors), len(vectors[0]), body["user"], body["session_id"])
        (2, 1536, 'app_42', 'docs-1')
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=())

    embed_batch_size: int = Field(default=DEFAULT_BATCH_SIZE, gt=0, le=MAX_INPUTS_PER_REQUEST)
    """Texts per request, from 1 to 2048 (LlamaIndex's default of 10 would mean 50x more requests)."""

    def __init__(self, **data: Any) -> None:
        # LlamaIndex spells the model `model_name` and the base URL `api_base`; both are accepted.
        # Checked here rather than in pydantic validators, which would wrap ConfigurationError.
        _same_setting(data, "api_base", "base_url")
        _same_setting(data, "model_name", "model")
        self._check_init(data, batch_field="embed_batch_size")
        super().__init__(**data)
        self.model_name = self.model
        self._invoker = self._build_invoker("llama_index")

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # As for the LLM: LlamaIndex's BaseComponent would re-run __init__ on unpickling and put the
        # (already sent) default ids through the policy again; the common restore rebuilds the invoker.
        EmbeddingOptions.__setstate__(self, state)

    @classmethod
    def class_name(cls) -> str:
        return "openrouter_attribution.OpenRouterEmbedding"

    def _prepare(self, texts: list[str]) -> list[Prepared]:
        invoker: Invoker = self._invoker
        attribution = tag_attribution(invoker, self.user_id_tag, self.session_id_tag)
        return invoker.prepare_embeddings(texts, attribution, batch_size=self.embed_batch_size)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._invoker.embed(self._prepare([query]))[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._invoker.aembed(self._prepare([query])))[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._invoker.embed(self._prepare([text]))[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._invoker.aembed(self._prepare([text])))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._invoker.embed(self._prepare(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return await self._invoker.aembed(self._prepare(texts))
