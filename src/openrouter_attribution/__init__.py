"""OpenRouter chat models for LangChain and LlamaIndex that attribute every call to its end-user.

The top-level package is framework-neutral and cheap to import: it loads
neither LangChain, LlamaIndex nor the ``openai`` SDK. Framework models live in
:mod:`openrouter_attribution.langchain` and :mod:`openrouter_attribution.llama_index`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openrouter_attribution.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AttributionError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidInputError,
    InvalidResponseError,
    MissingUserError,
    MissingUserWarning,
    ModerationError,
    OpenRouterError,
    ProviderUnavailableError,
    RateLimitError,
    RequestTimeoutError,
    TruncatedStreamError,
    UsageStoreWarning,
    UserIdError,
)

if TYPE_CHECKING:
    from openrouter_attribution.attribution import Attribution, current_attribution, propagate, user_context
    from openrouter_attribution.identity import UserIdPolicy
    from openrouter_attribution.keys import OpenRouterUserKeys
    from openrouter_attribution.usage import UsageLedger, UsageRecord
    from openrouter_attribution.usage.budgets.budget import UserBudget

__version__ = "0.1.0"
"""The release; the one place it is written (``pyproject.toml`` reads it from here)."""

# Public names served lazily so that `import openrouter_attribution` stays fast.
_LAZY = {
    "Attribution": "openrouter_attribution.attribution",
    "user_context": "openrouter_attribution.attribution",
    "current_attribution": "openrouter_attribution.attribution",
    "propagate": "openrouter_attribution.attribution",
    "UserIdPolicy": "openrouter_attribution.identity",
    "UsageLedger": "openrouter_attribution.usage",
    "UsageRecord": "openrouter_attribution.usage",
    "UserBudget": "openrouter_attribution.usage.budgets.budget",
    "OpenRouterUserKeys": "openrouter_attribution.keys",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'openrouter_attribution' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "Attribution",
    "AttributionError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigurationError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "InvalidResponseError",
    "MissingUserError",
    "MissingUserWarning",
    "ModerationError",
    "OpenRouterError",
    "OpenRouterUserKeys",
    "ProviderUnavailableError",
    "RateLimitError",
    "RequestTimeoutError",
    "TruncatedStreamError",
    "UsageLedger",
    "UsageRecord",
    "UserBudget",
    "UsageStoreWarning",
    "UserIdError",
    "UserIdPolicy",
    "current_attribution",
    "propagate",
    "user_context",
]
