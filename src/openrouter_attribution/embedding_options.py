"""Configuration of the embeddings classes of both frameworks.

:class:`EmbeddingOptions` adds the embeddings request fields to
:class:`~openrouter_attribution.options.ClientOptions`, so
:class:`~openrouter_attribution.langchain.OpenRouterEmbeddings` and
:class:`~openrouter_attribution.llama_index.OpenRouterEmbedding` accept the same options as the
chat models (key, base URL, timeout, retries, app headers, ``user`` / ``session_id`` defaults,
identity policy, ``require_user``, ledger) and send their requests through the same
:class:`~openrouter_attribution.client.Invoker`. The batch size is the adapters' own field,
spelled as each framework spells it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.options import ClientOptions
from openrouter_attribution.wire.embeddings import DEFAULT_EMBEDDING_MODEL, check_embedding_options

__all__ = ["EmbeddingOptions"]

_BODY_FIELDS = ("model", "dimensions", "encoding_format", "input_type", "provider")


class EmbeddingOptions(ClientOptions):
    """Fields of the embeddings classes: the common client fields plus the embeddings request fields.

    ``encoding_format`` defaults to ``"base64"``, as the ``openai`` SDK's own ``embeddings.create``
    does: the answer is about a third of the size of the JSON floats and decodes several times
    faster (see the embeddings benchmark in ``benchmarks/``); vectors come back as floats either way.
    """

    model: str = DEFAULT_EMBEDDING_MODEL
    """OpenRouter embeddings model id, e.g. ``"openai/text-embedding-3-small"``."""
    dimensions: int | None = None
    """Size of the returned vectors, for models that can shorten them (``None``: the model's own size)."""
    encoding_format: Literal["float", "base64"] = "base64"
    """How vectors travel: ``"base64"`` (float32 bytes, smaller and faster to read) or ``"float"`` (JSON
    numbers). Both are returned as lists of floats."""
    input_type: str | None = None
    """Input type hint for models that distinguish them, e.g. ``"search_query"`` / ``"search_document"``."""
    provider: dict[str, Any] | None = None
    """Provider routing preferences (``order``, ``only``, ``ignore``, ``allow_fallbacks``, ...)."""
    trace: dict[str, Any] | None = None
    """Default OpenRouter ``trace`` object for broadcast destinations."""

    @classmethod
    def _check_init(cls, data: Mapping[str, Any], *, batch_field: str) -> None:
        """Refuse unknown keywords and impossible values before pydantic sees them (ConfigurationError)."""
        cls._check_keywords(data)
        check_embedding_options(data, batch_field=batch_field)

    def _body_params(self) -> dict[str, Any]:
        return {name: value for name in _BODY_FIELDS if (value := getattr(self, name)) is not None}

    def _default_attribution(self) -> Attribution:
        return Attribution(user=self.user, session_id=self.session_id, trace=self.trace)
