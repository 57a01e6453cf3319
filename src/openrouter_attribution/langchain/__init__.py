"""LangChain integration: :class:`ChatOpenRouter` and :class:`OpenRouterEmbeddings`. Needs the ``[langchain]`` extra."""

from openrouter_attribution.langchain.chat_model import ChatOpenRouter
from openrouter_attribution.langchain.embeddings import OpenRouterEmbeddings
from openrouter_attribution.langchain.usage import UsageCallbackHandler

__all__ = ["ChatOpenRouter", "OpenRouterEmbeddings", "UsageCallbackHandler"]
