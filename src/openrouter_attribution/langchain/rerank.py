"""``OpenRouterRerank``: a LangChain document compressor that reranks for the end-user it serves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from openrouter_attribution.client import Invoker, Prepared
from openrouter_attribution.langchain.config import run_attribution
from openrouter_attribution.rerank_options import RerankOptions
from openrouter_attribution.wire.rerank import RerankResult

__all__ = ["OpenRouterRerank"]


class OpenRouterRerank(RerankOptions, BaseDocumentCompressor):
    """OpenRouter rerank for LangChain, attributing every request to the end-user it serves.

    A ``BaseDocumentCompressor``: use it as ``ContextualCompressionRetriever(base_compressor=...)``
    (``langchain_classic.retrievers``) or call :meth:`compress_documents` in a chain. It keeps the
    ``top_n`` most relevant documents, most relevant first, each with its metadata and the reranker's
    ``relevance_score`` added to it. One ``POST /rerank`` per call, with its own usage record
    (``kind="rerank"``) in ``ledger``.

    The end-user is resolved per call as for :class:`OpenRouterEmbeddings`, first match wins:
    LangGraph Platform's authenticated user > the run config of the runnable the call happens in
    (``config["configurable"]["user_id"]``, then ``config["metadata"]["user_id"]`` or
    ``["langfuse_user_id"]``) > the LangGraph runtime context's ``user_id`` >
    :func:`~openrouter_attribution.user_context` > the model's own ``user`` field. ``session_id``
    resolves the same way, with LangGraph's ``thread_id`` last. Rerank sends ``user``, ``session_id``
    and ``trace``; OpenRouter's ``/rerank`` takes no ``metadata``, so none is sent.

    Example:
        >>> from langchain_core.documents import Document
        >>> from openrouter_attribution import user_context
        >>> from openrouter_attribution.langchain import OpenRouterRerank
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server:
        ...     reranker = OpenRouterRerank(model="cohere/rerank-v3.5", top_n=1, base_url=server.base_url,
        ...                                 api_key=server.api_key)
        ...     docs = [Document("Dogs bark.", metadata={"id": 1}), Document("Cats purr.", metadata={"id": 2})]
        ...     with user_context("app_42"):
        ...         (best,) = reranker.compress_documents(docs, "Why do cats purr?")
        ...     (best.metadata["id"], best.metadata["relevance_score"] > 0, server.rerank_requests[-1].body["user"])
        (2, True, 'app_42')
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    user_id_key: str = "user_id"
    """Key looked up in ``config["configurable"]`` and ``config["metadata"]`` for the end-user."""
    session_id_key: str = "session_id"
    """Key looked up in ``config["configurable"]`` and ``config["metadata"]`` for the session."""

    def __init__(self, **kwargs: Any) -> None:
        # Checked before pydantic, so bad values raise ConfigurationError rather than a ValidationError.
        self._check_init(kwargs)
        super().__init__(**kwargs)
        self._invoker = self._build_invoker("langchain")

    def _prepare(self, documents: Sequence[Document], query: str) -> Prepared:
        invoker: Invoker = self._invoker
        attribution = run_attribution(invoker, user_id_key=self.user_id_key, session_id_key=self.session_id_key)
        return invoker.prepare_rerank(query, [document.page_content for document in documents], attribution)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Rank ``documents`` for ``query``; the ``top_n`` most relevant, each with its ``relevance_score``.

        No documents: nothing is sent and nothing is returned.

        Raises:
            InvalidInputError: an empty query, or a document whose text is empty (nothing is sent).
            MissingUserError: no user resolved while ``require_user=True`` (nothing is sent).
            BudgetExceededError: the user's budget refuses the request (nothing is sent).
            APIError: OpenRouter answered with an error (its subclass says which).
        """
        if not documents:
            return []
        return _scored(documents, self._invoker.rerank(self._prepare(documents, query)))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` (native, on the shared async client)."""
        if not documents:
            return []
        return _scored(documents, await self._invoker.arerank(self._prepare(documents, query)))


def _scored(documents: Sequence[Document], result: RerankResult) -> list[Document]:
    """The ranked documents, copies that keep their id and metadata and gain ``relevance_score``."""
    return [
        documents[index].model_copy(update={"metadata": {**documents[index].metadata, "relevance_score": score}})
        for index, score in result.ranked
    ]
