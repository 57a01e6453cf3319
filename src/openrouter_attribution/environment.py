"""The environment variables this library reads, read here and nowhere else.

Each function reads its variable when called (at construction of the object that needs it), so a
process can set them after importing the library. An empty variable counts as unset.
"""

from __future__ import annotations

import os

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DASHBOARD_TOKEN_ENV",
    "DEFAULT_BASE_URL",
    "HASH_KEY_ENV",
    "MANAGEMENT_KEY_ENV",
    "USER_KEY_SECRET_ENV",
    "api_key",
    "base_url",
    "dashboard_token",
    "hash_key",
    "management_key",
    "state_home",
    "user_key_secret",
]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
API_KEY_ENV = "OPENROUTER_API_KEY"
"""An OpenRouter API key: the models' ``api_key``, ``reconcile`` and the live demo."""
BASE_URL_ENV = "OPENROUTER_BASE_URL"
"""The API base URL (default :data:`DEFAULT_BASE_URL`)."""
MANAGEMENT_KEY_ENV = "OPENROUTER_MANAGEMENT_KEY"
"""An OpenRouter management key: per-user keys (:class:`~openrouter_attribution.OpenRouterUserKeys`)."""
USER_KEY_SECRET_ENV = "OPENROUTER_USER_KEY_SECRET"
"""The secret every per-user key is derived from."""
HASH_KEY_ENV = "OPENROUTER_USER_HASH_KEY"
"""The key of :class:`~openrouter_attribution.UserIdPolicy` pseudonyms."""
DASHBOARD_TOKEN_ENV = "OPENROUTER_ATTRIBUTION_DASHBOARD_TOKEN"
"""The token ``openrouter-attribution dashboard`` requires of every request (``--token`` wins)."""


def _read(name: str) -> str | None:
    return os.environ.get(name) or None


def api_key() -> str | None:
    """``OPENROUTER_API_KEY``, or ``None``."""
    return _read(API_KEY_ENV)


def base_url() -> str:
    """``OPENROUTER_BASE_URL``, or OpenRouter's own."""
    return _read(BASE_URL_ENV) or DEFAULT_BASE_URL


def management_key() -> str | None:
    """``OPENROUTER_MANAGEMENT_KEY``, or ``None``."""
    return _read(MANAGEMENT_KEY_ENV)


def user_key_secret() -> str | None:
    """``OPENROUTER_USER_KEY_SECRET``, or ``None``."""
    return _read(USER_KEY_SECRET_ENV)


def hash_key() -> str | None:
    """``OPENROUTER_USER_HASH_KEY``, or ``None``."""
    return _read(HASH_KEY_ENV)


def dashboard_token() -> str | None:
    """``OPENROUTER_ATTRIBUTION_DASHBOARD_TOKEN``, or ``None``."""
    return _read(DASHBOARD_TOKEN_ENV)


def state_home() -> str:
    """Where per-user state lives: ``$XDG_STATE_HOME``, else ``~/.local/state``."""
    return _read("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
