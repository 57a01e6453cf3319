"""The model catalog served by the fake server's ``GET /models``, checked on every request, and used for pricing.

Prices follow OpenRouter's ``/models`` convention: decimal strings in US dollars
per token (https://openrouter.ai/docs/api-reference/list-available-models).
The server is as strict as OpenRouter: a request naming a model that is not in
its :class:`Catalog` (``CATALOG``, the ``openrouter/auto`` router and the models
given to ``FakeOpenRouter(models=...)``) is answered 400 with OpenRouter's
``"<id> is not a valid model ID"`` error. The variants OpenRouter offers for any
model (``:nitro``, ``:floor``, ``:online``) are accepted on catalog ids; the
reserved ids ``fake/fault-<name>`` select a fault (see
:mod:`~openrouter_attribution.testing.faults`). Models added by id only get
:data:`DEFAULT_PRICING`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "AUTO_ROUTER",
    "CATALOG",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_MODEL",
    "DEFAULT_PRICING",
    "Catalog",
    "EMBEDDING_CATALOG",
    "EmbeddingModelInfo",
    "ModelInfo",
    "compute_cost",
    "embedding_models_payload",
    "lookup_embedding_model",
    "lookup_model",
    "models_payload",
    "provider_name_for",
]

_COMMON_PARAMETERS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "response_format",
    "structured_outputs",
    "tools",
    "tool_choice",
)
_REASONING_PARAMETERS = (
    "reasoning",
    "include_reasoning",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
)

# A plausible upstream per vendor, reported as the top-level `provider` of a completion.
_PROVIDERS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google AI Studio",
    "meta-llama": "DeepInfra",
    "deepseek": "DeepSeek",
    "mistralai": "Mistral",
    "x-ai": "xAI",
    "qwen": "Alibaba",
}
_DEFAULT_PROVIDER = "Together"


@dataclass(frozen=True)
class ModelInfo:
    """One model of the catalog.

    Attributes:
        id: OpenRouter model id, ``vendor/name``.
        name: Human-readable name.
        context_length: Context window in tokens.
        prompt_price: US dollars per prompt token, as a decimal string.
        completion_price: US dollars per completion token, as a decimal string.
        max_completion_tokens: Upper bound of completion tokens of the top provider.
        reasoning: Whether the model always reasons (emits reasoning tokens).
        supported_parameters: Request parameters the model accepts.
    """

    id: str
    name: str
    context_length: int
    prompt_price: str
    completion_price: str
    max_completion_tokens: int
    reasoning: bool = False
    supported_parameters: tuple[str, ...] = _COMMON_PARAMETERS

    @property
    def provider_name(self) -> str:
        """The upstream provider that serves this model."""
        return provider_name_for(self.id)

    def to_payload(self) -> dict[str, Any]:
        """Return the model as one entry of OpenRouter's ``/models`` ``data`` list."""
        return {
            "id": self.id,
            "canonical_slug": self.id,
            "name": self.name,
            "created": 1_720_000_000,
            "description": f"{self.name} (served by the local fake OpenRouter).",
            "context_length": self.context_length,
            "architecture": {
                "modality": "text->text",
                "input_modalities": ["text"],
                "output_modalities": ["text"],
                "tokenizer": "Other",
                "instruct_type": None,
            },
            "pricing": {
                "prompt": self.prompt_price,
                "completion": self.completion_price,
                "request": "0",
                "image": "0",
            },
            "top_provider": {
                "context_length": self.context_length,
                "max_completion_tokens": self.max_completion_tokens,
                "is_moderated": self.id.startswith("openai/"),
            },
            "per_request_limits": None,
            "supported_parameters": list(self.supported_parameters),
            "default_parameters": None,
            "supported_voices": None,
            "links": {"details": f"/api/v1/models/{self.id}/endpoints"},
        }


CATALOG: tuple[ModelInfo, ...] = (
    ModelInfo("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", 128_000, "0.00000015", "0.0000006", 16_384),
    ModelInfo("openai/gpt-4o", "OpenAI: GPT-4o", 128_000, "0.0000025", "0.00001", 16_384),
    ModelInfo("anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet", 200_000, "0.000003", "0.000015", 8_192),
    ModelInfo("google/gemini-2.0-flash-001", "Google: Gemini 2.0 Flash", 1_048_576, "0.0000001", "0.0000004", 8_192),
    ModelInfo(
        "meta-llama/llama-3.1-8b-instruct",
        "Meta: Llama 3.1 8B Instruct",
        131_072,
        "0.00000002",
        "0.00000005",
        16_384,
    ),
    ModelInfo(
        "deepseek/deepseek-r1",
        "DeepSeek: R1",
        163_840,
        "0.0000004",
        "0.000002",
        163_840,
        reasoning=True,
        supported_parameters=_REASONING_PARAMETERS,
    ),
)
"""The models listed by ``GET /api/v1/models``."""

DEFAULT_MODEL = CATALOG[0].id
"""Model served when a request names neither ``model`` nor ``models`` (OpenRouter: the account default)."""

DEFAULT_PRICING = ("0.000001", "0.000002")
"""``(prompt, completion)`` US dollars per token for models added by id (``FakeOpenRouter(models=["a/b"])``)."""

AUTO_ROUTER = "openrouter/auto"
"""OpenRouter's Auto Router, the library's default model: served by :data:`DEFAULT_MODEL` (the answer's
``model`` says so, as OpenRouter's does), listed by ``/models`` with OpenRouter's ``"-1"`` prices."""

_BY_ID = {model.id: model for model in CATALOG}
# Suffixes OpenRouter accepts on any model id (https://openrouter.ai/docs/faq#model-variants).
_DYNAMIC_VARIANTS = (":nitro", ":floor", ":online")
_MODEL_ID = re.compile(r"^[^/\s:]+/[^\s]+$")


def provider_name_for(model_id: str) -> str:
    """Return a plausible upstream provider name for ``model_id`` (by its vendor prefix)."""
    vendor = model_id.split("/", 1)[0]
    return _PROVIDERS.get(vendor, _DEFAULT_PROVIDER)


def lookup_model(model_id: str) -> ModelInfo:
    """Return the :data:`CATALOG` entry for ``model_id``, or a default-priced entry for other ids.

    Pricing only: whether a server accepts the id is :meth:`Catalog.get`'s business.
    """
    known = _BY_ID.get(model_id)
    if known is not None:
        return known
    return default_priced(model_id)


def default_priced(model_id: str) -> ModelInfo:
    """A catalog entry for ``model_id`` with :data:`DEFAULT_PRICING`."""
    prompt, completion = DEFAULT_PRICING
    return ModelInfo(model_id, model_id, 32_768, prompt, completion, 4_096)


class Catalog:
    """The models one server knows: :data:`CATALOG`, :data:`AUTO_ROUTER` and the ones added.

    Args:
        extra: Models to add, as :class:`ModelInfo` (prices and limits as given) or ids
            (``"vendor/name"``, priced with :data:`DEFAULT_PRICING`). An entry with the id of a
            catalog model replaces it.

    Raises:
        ValueError: An added id is not of the form ``vendor/name``.

    Examples:
        >>> catalog = Catalog(["acme/model-1"])
        >>> catalog.get("acme/model-1").prompt_price, catalog.get("openai/gpt-4o-mini:nitro").id
        ('0.000001', 'openai/gpt-4o-mini')
        >>> catalog.get("openai/gpt-4o-mnii") is None
        True
    """

    def __init__(self, extra: Iterable[ModelInfo | str] = ()) -> None:
        models = dict(_BY_ID)
        for entry in extra:
            info = default_priced(entry) if isinstance(entry, str) else entry
            if not isinstance(info, ModelInfo) or not _MODEL_ID.match(info.id):
                raise ValueError(f"models= takes ModelInfo entries or 'vendor/name' ids, got {entry!r}")
            models[info.id] = info
        self._models = models

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """Every model, in catalog order then in the order added."""
        return tuple(self._models.values())

    def get(self, model_id: str) -> ModelInfo | None:
        """The model a request's id names (``:nitro`` / ``:floor`` / ``:online`` variants and the auto
        router resolved to the model that serves them), or ``None`` when OpenRouter would refuse it."""
        if model_id == AUTO_ROUTER:
            return self._models[DEFAULT_MODEL]
        known = self._models.get(model_id)
        if known is not None:
            return known
        for suffix in _DYNAMIC_VARIANTS:
            if model_id.endswith(suffix):
                return self._models.get(model_id.removesuffix(suffix))
        return None

    def payload(self) -> dict[str, Any]:
        """The body of ``GET /api/v1/models``: every model, then the auto router."""
        auto = ModelInfo(AUTO_ROUTER, "Auto Router", 2_000_000, "-1", "-1", 4_096).to_payload()
        data = [model.to_payload() for model in self._models.values()] + [auto]
        return {"data": data, "links": {"next": None}, "total_count": len(data)}


def compute_cost(model: ModelInfo, prompt_tokens: int, completion_tokens: int) -> tuple[float, float, float]:
    """Return ``(total, prompt_part, completion_part)`` in US dollars.

    Computed exactly with :class:`~decimal.Decimal` and converted once, so that
    ``total == prompt_part + completion_part`` up to float rounding.
    Reasoning tokens are part of ``completion_tokens`` and billed at the
    completion price, as OpenRouter does.
    """
    prompt_part = Decimal(model.prompt_price) * prompt_tokens
    completion_part = Decimal(model.completion_price) * completion_tokens
    return float(prompt_part + completion_part), float(prompt_part), float(completion_part)


def models_payload() -> dict[str, Any]:
    """Return the body of ``GET /api/v1/models`` of a server without added models."""
    return Catalog().payload()


# -- embeddings models ---------------------------------------------------------------------------------
#
# OpenRouter lists embeddings models apart from chat models: `GET /embeddings/models` (and
# `GET /models?output_modalities=embeddings`); `POST /embeddings` serves only these.


@dataclass(frozen=True)
class EmbeddingModelInfo:
    """One embeddings model of the catalog.

    Attributes:
        id: OpenRouter model id, ``vendor/name``.
        name: Human-readable name.
        context_length: Most tokens one input may have.
        prompt_price: US dollars per input token, as a decimal string.
        dimensions: Size of the vectors it returns.
        settable_dimensions: Whether ``dimensions`` may ask for shorter vectors.
    """

    id: str
    name: str
    context_length: int
    prompt_price: str
    dimensions: int
    settable_dimensions: bool

    @property
    def provider_name(self) -> str:
        """The upstream provider that serves this model."""
        return provider_name_for(self.id)

    def cost(self, tokens: int) -> float:
        """US dollars for ``tokens`` input tokens (computed exactly, converted once)."""
        return float(Decimal(self.prompt_price) * tokens)

    def to_payload(self) -> dict[str, Any]:
        """Return the model as one entry of OpenRouter's ``/embeddings/models`` ``data`` list."""
        parameters = ["dimensions", "encoding_format"] if self.settable_dimensions else ["encoding_format"]
        return {
            "id": self.id,
            "canonical_slug": self.id,
            "name": self.name,
            "created": 1_720_000_000,
            "description": f"{self.name} (served by the local fake OpenRouter).",
            "context_length": self.context_length,
            "architecture": {
                "modality": "text->embeddings",
                "input_modalities": ["text"],
                "output_modalities": ["embeddings"],
                "tokenizer": "Other",
                "instruct_type": None,
            },
            "pricing": {"prompt": self.prompt_price, "completion": "0", "request": "0", "image": "0"},
            "top_provider": {"context_length": self.context_length, "max_completion_tokens": None,
                             "is_moderated": False},
            "per_request_limits": None,
            "supported_parameters": parameters,
            "default_parameters": None,
            "supported_voices": None,
            "links": {"details": f"/api/v1/models/{self.id}/endpoints"},
        }  # fmt: skip


EMBEDDING_CATALOG: tuple[EmbeddingModelInfo, ...] = (
    EmbeddingModelInfo(
        "openai/text-embedding-3-small", "OpenAI: Text Embedding 3 Small", 8_192, "0.00000002", 1536, True
    ),
    EmbeddingModelInfo(
        "openai/text-embedding-3-large", "OpenAI: Text Embedding 3 Large", 8_192, "0.00000013", 3072, True
    ),
    EmbeddingModelInfo(
        "openai/text-embedding-ada-002", "OpenAI: Text Embedding Ada 002", 8_192, "0.0000001", 1536, False
    ),
    EmbeddingModelInfo("mistralai/mistral-embed-2312", "Mistral: Mistral Embed 2312", 8_192, "0.0000001", 1024, False),
    EmbeddingModelInfo("google/gemini-embedding-001", "Google: Gemini Embedding 001", 2_048, "0.00000015", 3072, True),
)
"""The models listed by ``GET /api/v1/embeddings/models`` and served by ``POST /api/v1/embeddings``."""

DEFAULT_EMBEDDING_MODEL = EMBEDDING_CATALOG[0].id
"""Embeddings model used when a request names only a fault model (``fake/fault-<name>``)."""

_EMBEDDING_BY_ID = {model.id: model for model in EMBEDDING_CATALOG}


def lookup_embedding_model(model_id: str) -> EmbeddingModelInfo | None:
    """Return the embeddings model ``model_id`` (variant suffixes such as ``:free`` ignored), or ``None``."""
    return _EMBEDDING_BY_ID.get(model_id.split(":", 1)[0])


def embedding_models_payload() -> dict[str, Any]:
    """Return the body of ``GET /api/v1/embeddings/models``."""
    return {
        "data": [model.to_payload() for model in EMBEDDING_CATALOG],
        "links": {"next": None},
        "total_count": len(EMBEDDING_CATALOG),
    }
