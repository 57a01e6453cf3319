"""LangChain integration: :class:`ChatOpenRouter`. Needs the ``[langchain]`` extra."""

from openrouter_attribution.langchain.chat_model import ChatOpenRouter

__all__ = ["ChatOpenRouter"]
