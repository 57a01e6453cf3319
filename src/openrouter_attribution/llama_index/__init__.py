"""OpenRouter for LlamaIndex, attributing every call to its end-user: :class:`OpenRouter` (LLM) and
:class:`OpenRouterEmbedding` (embeddings)."""

from __future__ import annotations

from openrouter_attribution.llama_index.embeddings import OpenRouterEmbedding
from openrouter_attribution.llama_index.llm import OpenRouter
from openrouter_attribution.llama_index.usage import UsageEventHandler, attach_usage_handler

__all__ = ["OpenRouter", "OpenRouterEmbedding", "UsageEventHandler", "attach_usage_handler"]
