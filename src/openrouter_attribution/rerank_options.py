"""Configuration of the rerankers of both frameworks.

:class:`RerankOptions` adds the rerank request fields to
:class:`~openrouter_attribution.options.ClientOptions`, so
:class:`~openrouter_attribution.langchain.OpenRouterRerank` and
:class:`~openrouter_attribution.llama_index.OpenRouterRerank` accept the same options as the chat
models (key, base URL, timeout, retries, app headers, ``user`` / ``session_id`` defaults, identity
policy, ``require_user``, ledger, budget) and send their requests through the same
:class:`~openrouter_attribution.client.Invoker`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.options import ClientOptions
from openrouter_attribution.wire.rerank import DEFAULT_RERANK_MODEL, DEFAULT_TOP_N, check_top_n

__all__ = ["RerankOptions"]

_BODY_FIELDS = ("model", "top_n", "provider")


class RerankOptions(ClientOptions):
    """Fields of the rerankers: the common client fields plus the rerank request fields."""

    model: str = DEFAULT_RERANK_MODEL
    """OpenRouter rerank model id, e.g. ``"cohere/rerank-v3.5"``."""
    top_n: int | None = DEFAULT_TOP_N
    """How many of the most relevant documents to keep (``None``: every document, ranked)."""
    provider: dict[str, Any] | None = None
    """Provider routing preferences (``order``, ``only``, ``ignore``, ``allow_fallbacks``, ...)."""
    trace: dict[str, Any] | None = None
    """Default OpenRouter ``trace`` object for broadcast destinations."""

    @classmethod
    def _check_init(cls, data: Mapping[str, Any]) -> None:
        """Refuse unknown keywords and a ``top_n`` below 1 before pydantic sees them (ConfigurationError)."""
        cls._check_keywords(data)
        check_top_n(data.get("top_n"))

    def _body_params(self) -> dict[str, Any]:
        return {name: value for name in _BODY_FIELDS if (value := getattr(self, name)) is not None}

    def _default_attribution(self) -> Attribution:
        return Attribution(user=self.user, session_id=self.session_id, trace=self.trace)
