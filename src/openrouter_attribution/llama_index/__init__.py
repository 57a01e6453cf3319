"""OpenRouter for LlamaIndex, attributing every call to its end-user: :class:`OpenRouter`."""

from __future__ import annotations

from openrouter_attribution.llama_index.llm import OpenRouter

__all__ = ["OpenRouter"]
