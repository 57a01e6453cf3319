"""``OpenRouterEmbeddings``: LangChain embeddings that attribute every request to its end-user."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict

from openrouter_attribution.client import Invoker, Prepared
from openrouter_attribution.embedding_options import EmbeddingOptions
from openrouter_attribution.langchain.config import run_attribution
from openrouter_attribution.wire.embeddings import DEFAULT_BATCH_SIZE

__all__ = ["OpenRouterEmbeddings"]


class OpenRouterEmbeddings(EmbeddingOptions, Embeddings):
    """OpenRouter embeddings for LangChain, attributing every request to the end-user it serves.

    The end-user is resolved per call, first match wins: the run config of the runnable the call
    happens in (``config["configurable"]["user_id"]``, then ``config["metadata"]["user_id"]`` or
    ``["langfuse_user_id"]``; a retriever in a chain run with ``config={"configurable": {"user_id":
    ...}}`` carries it) > :func:`~openrouter_attribution.user_context` > the model's own ``user``
    field. ``session_id`` resolves the same way, with LangGraph's ``thread_id`` last. Texts are sent
    ``batch_size`` at a time; every request gets its own usage record in ``ledger``.

    A retriever invoked on its own (``retriever.invoke(query, config=...)``, outside any chain)
    does not publish its config to the embeddings it calls: wrap such calls in ``user_context``.

    Examples:
        >>> from openrouter_attribution.langchain import OpenRouterEmbeddings
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> from openrouter_attribution import user_context
        >>> with FakeOpenRouter() as server:
        ...     embeddings = OpenRouterEmbeddings(model="openai/text-embedding-3-small", dimensions=256,
        ...                                       base_url=server.base_url, api_key=server.api_key)
        ...     with user_context("app_42"):
        ...         vectors = embeddings.embed_documents(["a cat", "a kitten"])
        ...     (len(vectors), len(vectors[0]), server.embeddings_requests[-1].body["user"])
        (2, 256, 'app_42')
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    user_id_key: str = "user_id"
    """Key looked up in ``config["configurable"]`` and ``config["metadata"]`` for the end-user."""
    session_id_key: str = "session_id"
    """Key looked up in ``config["configurable"]`` and ``config["metadata"]`` for the session."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Texts per request, from 1 to 2048 (OpenAI's documented maximum per request)."""

    def __init__(self, **kwargs: Any) -> None:
        # Checked before pydantic, so bad values raise ConfigurationError rather than a ValidationError.
        self._check_init(kwargs, batch_field="batch_size")
        super().__init__(**kwargs)
        self._invoker = self._build_invoker("langchain")

    def _prepare(self, texts: list[str]) -> list[Prepared]:
        invoker: Invoker = self._invoker
        attribution = run_attribution(invoker, user_id_key=self.user_id_key, session_id_key=self.session_id_key)
        return invoker.prepare_embeddings(texts, attribution, batch_size=self.batch_size)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts (``batch_size`` per request); an empty list sends nothing.

        Raises:
            InvalidInputError: a text is empty or not a string (nothing is sent).
            MissingUserError: no user resolved while ``require_user=True`` (nothing is sent).
            APIError: OpenRouter answered with an error (its subclass says which).
        """
        if isinstance(texts, list) and not texts:
            return []
        return self._invoker.embed(self._prepare(texts))

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text."""
        return self._invoker.embed(self._prepare([text]))[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (native, on the shared async client)."""
        if isinstance(texts, list) and not texts:
            return []
        return await self._invoker.aembed(self._prepare(texts))

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self._invoker.aembed(self._prepare([text])))[0]
