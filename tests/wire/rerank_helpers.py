"""Shared helpers of the rerank wire tests: rerankers pointed at the local server."""

from __future__ import annotations

from typing import Any

from tests.wire.embeddings_helpers import endpoint

RERANK_MODEL = "cohere/rerank-v3.5"


def make_lc_rerank(server: Any, **kwargs: Any) -> Any:
    """A LangChain ``OpenRouterRerank`` for the local server."""
    from openrouter_attribution.langchain import OpenRouterRerank

    return OpenRouterRerank(**endpoint(server, **{"model": RERANK_MODEL, **kwargs}))


def make_li_rerank(server: Any, **kwargs: Any) -> Any:
    """A LlamaIndex ``OpenRouterRerank`` for the local server."""
    from openrouter_attribution.llama_index import OpenRouterRerank

    return OpenRouterRerank(**endpoint(server, **{"model": RERANK_MODEL, **kwargs}))
