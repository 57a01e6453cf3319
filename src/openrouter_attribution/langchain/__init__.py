"""LangChain integration: :class:`ChatOpenRouter`. Needs the ``[langchain]`` extra."""

from openrouter_attribution.langchain.chat_model import ChatOpenRouter
from openrouter_attribution.langchain.usage import UsageCallbackHandler

__all__ = ["ChatOpenRouter", "UsageCallbackHandler"]
