"""OpenRouter for LlamaIndex, attributing every call to its end-user: :class:`OpenRouter` (LLM),
:class:`OpenRouterEmbedding` (embeddings) and :class:`OpenRouterRerank` (a node postprocessor).

Needs the ``[llama-index]`` extra.
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401 - checked first, so a missing extra gets a message that says what to install
except ImportError as _err:
    raise ModuleNotFoundError(
        "openrouter_attribution.llama_index needs LlamaIndex (llama-index-core), which is not installed. "
        'Install it with: pip install "openrouter-attribution[llama-index]"',
        name="llama_index.core",
    ) from _err

from openrouter_attribution.llama_index.embeddings import OpenRouterEmbedding
from openrouter_attribution.llama_index.llm import OpenRouter
from openrouter_attribution.llama_index.rerank import OpenRouterRerank
from openrouter_attribution.llama_index.usage import UsageEventHandler, attach_usage_handler

__all__ = ["OpenRouter", "OpenRouterEmbedding", "OpenRouterRerank", "UsageEventHandler", "attach_usage_handler"]
