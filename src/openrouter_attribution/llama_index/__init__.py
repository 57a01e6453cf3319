"""OpenRouter for LlamaIndex, attributing every call to its end-user: :class:`OpenRouter`."""

from __future__ import annotations

from openrouter_attribution.llama_index.llm import OpenRouter
from openrouter_attribution.llama_index.usage import UsageEventHandler, attach_usage_handler

__all__ = ["OpenRouter", "UsageEventHandler", "attach_usage_handler"]
