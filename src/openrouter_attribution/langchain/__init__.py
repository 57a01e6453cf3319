"""LangChain integration: :class:`ChatOpenRouter`, :class:`OpenRouterEmbeddings` and :class:`OpenRouterRerank`.

Needs the ``[langchain]`` extra.
"""

try:
    import langchain_core  # noqa: F401 - checked first, so a missing extra gets a message that says what to install
except ImportError as _err:
    raise ModuleNotFoundError(
        "openrouter_attribution.langchain needs LangChain (langchain-core), which is not installed. "
        'Install it with: pip install "openrouter-attribution[langchain]"',
        name="langchain_core",
    ) from _err

from openrouter_attribution.langchain.chat_model import ChatOpenRouter
from openrouter_attribution.langchain.embeddings import OpenRouterEmbeddings
from openrouter_attribution.langchain.rerank import OpenRouterRerank
from openrouter_attribution.langchain.usage import UsageCallbackHandler

__all__ = ["ChatOpenRouter", "OpenRouterEmbeddings", "OpenRouterRerank", "UsageCallbackHandler"]
