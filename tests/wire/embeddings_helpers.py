"""Shared helpers of the embeddings wire tests: models pointed at the local server, what the server received."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

EMBEDDING_MODEL = "openai/text-embedding-3-small"
CHAT_MODEL = "openai/gpt-4o-mini"

# A small corpus for the RAG tests: each question shares words with exactly one document.
DOCUMENTS = [
    "Cats purr when they are content and sleep most of the day.",
    "Dogs bark at strangers and love long walks in the park.",
    "Goldfish swim in bowls and remember things for months.",
]
QUESTIONS = ["Why do cats purr?", "Why do dogs bark at strangers?", "What do goldfish remember?"]


def endpoint(server: Any, **kwargs: Any) -> dict[str, Any]:
    """Connection keywords for the local server, without retries unless asked; unattributed calls allowed
    unless asked (``require_user=...``), as the chat helpers do."""
    return {"base_url": server.base_url, "api_key": server.api_key, "max_retries": 0, "require_user": False, **kwargs}


def make_lc_embeddings(server: Any, **kwargs: Any) -> Any:
    """A LangChain ``OpenRouterEmbeddings`` for the local server."""
    from openrouter_attribution.langchain import OpenRouterEmbeddings

    return OpenRouterEmbeddings(**endpoint(server, **{"model": EMBEDDING_MODEL, **kwargs}))


def make_li_embedding(server: Any, **kwargs: Any) -> Any:
    """A LlamaIndex ``OpenRouterEmbedding`` for the local server."""
    from openrouter_attribution.llama_index import OpenRouterEmbedding

    return OpenRouterEmbedding(**endpoint(server, **{"model": EMBEDDING_MODEL, **kwargs}))


def request_kinds(server: Any) -> list[str]:
    """What each recorded request was: ``"embeddings"``, ``"rerank"``, ``"chat"``, else its path."""
    return ["embeddings" if r.is_embeddings else "rerank" if r.is_rerank else "chat" if r.is_chat else r.path
            for r in server.requests]  # fmt: skip


def attributions(requests: list[Any]) -> list[tuple[Any, Any]]:
    """``(user, session_id)`` of each recorded request, in order."""
    return [(r.body.get("user"), r.body.get("session_id")) for r in requests]


def server_costs_by_user(server: Any) -> dict[str | None, Decimal]:
    """What the server charged, per user, over every generation it served."""
    costs: dict[str | None, Decimal] = defaultdict(Decimal)
    for generation in server.generations.values():
        costs[generation["user"]] += Decimal(str(generation["total_cost"]))
    return dict(costs)
