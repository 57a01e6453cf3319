"""``OpenRouterRerank``: a LlamaIndex node postprocessor that reranks for the end-user it serves."""

from __future__ import annotations

from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import ConfigDict

from openrouter_attribution.client import Invoker, Prepared
from openrouter_attribution.errors import InvalidInputError
from openrouter_attribution.llama_index.context import tag_attribution
from openrouter_attribution.llama_index.embeddings import _same_setting
from openrouter_attribution.llama_index.fields import LlamaIndexFields
from openrouter_attribution.rerank_options import RerankOptions
from openrouter_attribution.wire.rerank import RerankResult

__all__ = ["OpenRouterRerank"]

dispatcher = get_dispatcher(__name__)


class OpenRouterRerank(BaseNodePostprocessor, LlamaIndexFields, RerankOptions):  # type: ignore[misc]
    """OpenRouter rerank for LlamaIndex, attributing every request to the end-user it serves.

    A node postprocessor: pass it as ``node_postprocessors=[...]`` to a query or chat engine (or call
    ``postprocess_nodes`` / ``apostprocess_nodes``). It keeps the ``top_n`` most relevant nodes, most
    relevant first, each scored with the reranker's relevance score. One ``POST /rerank`` per call,
    with its own usage record (``kind="rerank"``) in ``ledger``.

    The end-user is resolved per call, first match wins: :func:`~openrouter_attribution.user_context`
    > LlamaIndex's ``instrument_tags({"user_id": ..., "session_id": ...})`` (key names set by
    ``user_id_tag`` and ``session_id_tag``) > the model's own ``user`` / ``session_id`` fields.
    Rerank sends ``user``, ``session_id`` and ``trace``; OpenRouter's ``/rerank`` takes no
    ``metadata``, so none is sent.

    Example:
        >>> from llama_index.core.schema import NodeWithScore, TextNode
        >>> from openrouter_attribution import user_context
        >>> from openrouter_attribution.llama_index import OpenRouterRerank
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server:
        ...     reranker = OpenRouterRerank(model="cohere/rerank-v3.5", top_n=1, api_base=server.base_url,
        ...                                 api_key=server.api_key)
        ...     nodes = [NodeWithScore(node=TextNode(text="Dogs bark.")),
        ...              NodeWithScore(node=TextNode(text="Cats purr."))]
        ...     with user_context("app_42"):
        ...         (best,) = reranker.postprocess_nodes(nodes, query_str="Why do cats purr?")
        ...     (best.node.text, best.score > 0, server.rerank_requests[-1].body["user"])
        ('Cats purr.', True, 'app_42')
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=())

    def __init__(self, **data: Any) -> None:
        # LlamaIndex spells the base URL `api_base`; both spellings are accepted. Checked here rather than
        # in pydantic validators, which would wrap ConfigurationError.
        _same_setting(data, "api_base", "base_url")
        self._check_init(data)
        super().__init__(**data)
        self._invoker = self._build_invoker("llama_index")

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # As for the embeddings: the common restore rebuilds the invoker without re-running __init__.
        RerankOptions.__setstate__(self, state)

    @classmethod
    def class_name(cls) -> str:
        return "openrouter_attribution.OpenRouterRerank"

    def _prepare(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> Prepared:
        if query_bundle is None:
            raise InvalidInputError("Reranking needs the query: pass query_str=... or a query_bundle.")
        invoker: Invoker = self._invoker
        attribution = tag_attribution(invoker, self.user_id_tag, self.session_id_tag)
        texts = [node.node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n or len(nodes), model_name=self.model)
        )
        return invoker.prepare_rerank(query_bundle.query_str, texts, attribution)

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        return _scored(nodes, self._invoker.rerank(self._prepare(nodes, query_bundle)))

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        return _scored(nodes, await self._invoker.arerank(self._prepare(nodes, query_bundle)))


def _scored(nodes: list[NodeWithScore], result: RerankResult) -> list[NodeWithScore]:
    """The ranked nodes, each scored with its relevance score (the retrieval score is replaced)."""
    ranked = [NodeWithScore(node=nodes[index].node, score=score) for index, score in result.ranked]
    dispatcher.event(ReRankEndEvent(nodes=ranked))
    return ranked
