"""What a call can cost at most, from the model's pricing in ``GET /models``: budget reserves.

A :class:`~openrouter_attribution.UserBudget` without a fixed ``reserve`` holds, for each call, the
ceiling of its cost (embeddings requests are priced from ``GET /embeddings/models``, input only):
prompt tokens estimated from the request (one token per 3 characters of text, 4
per message, 1,000 per non-text part: more than real tokenizers count for ordinary text) at the
prompt price, plus the completion at the completion price for the call's ``max_tokens``
(``max_completion_tokens``), else the model's ``top_provider.max_completion_tokens``, plus the
per-request price. With ``models`` fallbacks, the costliest candidate counts. Prices are the decimal
strings OpenRouter publishes (https://openrouter.ai/docs/api-reference/list-available-models), read
once per process and base URL and kept for an hour; a model that is not listed, or a negative (variable)
price, gives no ceiling, and the budget's ``fallback_reserve`` is held instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from openrouter_attribution.errors import OpenRouterError
from openrouter_attribution.transport import ConnectionSettings, aget_json, get_json

__all__ = ["CHAT_MODELS", "EMBEDDING_MODELS", "ModelPrice", "aprices", "ceiling", "clear", "listing_for",
           "parse_prices", "prices"]  # fmt: skip

logger = logging.getLogger("openrouter_attribution")

TTL = 3600.0
"""Seconds a fetched price list is used."""
RETRY = 60.0
"""Seconds before a failed fetch is tried again (meanwhile calls hold the fallback reserve)."""
CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4
TOKENS_PER_PART = 1000
DEFAULT_COMPLETION_TOKENS = 4096

_cache: dict[tuple[ConnectionSettings, str], tuple[float, dict[str, ModelPrice]]] = {}
CHAT_MODELS, EMBEDDING_MODELS = "/models", "/embeddings/models"
"""Where OpenRouter lists chat models and embeddings models, with their prices."""
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices in USD (per token for ``prompt`` / ``completion``, per call for ``request``)."""

    prompt: Decimal
    completion: Decimal
    request: Decimal = Decimal(0)
    max_completion_tokens: int | None = None


def _price(value: Any) -> Decimal | None:
    try:
        price = Decimal(str(value)) if value is not None else Decimal(0)
    except (InvalidOperation, ValueError):
        return None
    return price if price.is_finite() and price >= 0 else None


def parse_prices(payload: Any) -> dict[str, ModelPrice]:
    """Model id -> prices from a ``GET /models`` body; entries without usable prices are left out."""
    table: dict[str, ModelPrice] = {}
    data = payload.get("data") if isinstance(payload, Mapping) else None
    for entry in data if isinstance(data, list) else ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            continue
        pricing: Mapping[str, Any] = entry["pricing"] if isinstance(entry.get("pricing"), Mapping) else {}
        prompt, completion, request = (_price(pricing.get(k)) for k in ("prompt", "completion", "request"))
        if prompt is None or completion is None or request is None or "prompt" not in pricing:
            continue
        top: Mapping[str, Any] = entry["top_provider"] if isinstance(entry.get("top_provider"), Mapping) else {}
        limit = top.get("max_completion_tokens")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
        table[entry["id"]] = ModelPrice(prompt, completion, request, limit)
    return table


def _cached(key: tuple[ConnectionSettings, str]) -> dict[str, ModelPrice] | None:
    hit = _cache.get(key)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def _store(key: tuple[ConnectionSettings, str], table: dict[str, ModelPrice] | None, err: BaseException | None) -> dict:
    if err is not None:
        logger.warning("budget: cannot read model prices from GET %s (%s); calls hold the fallback reserve for "
                       "%.0f s", key[1], type(err).__name__, RETRY)  # fmt: skip
    with _lock:
        _cache[key] = (time.monotonic() + (TTL if err is None else RETRY), table or {})
    return table or {}


def prices(settings: ConnectionSettings, listing: str = CHAT_MODELS) -> dict[str, ModelPrice]:
    """The price list for these connection settings (fetched when missing or older than an hour).

    Args:
        settings: The model's connection settings.
        listing: :data:`CHAT_MODELS` or :data:`EMBEDDING_MODELS`.
    """
    key = (settings, listing)
    table = _cached(key)
    if table is not None:
        return table
    try:
        return _store(key, parse_prices(get_json(settings, listing)), None)
    except OpenRouterError as err:
        return _store(key, None, err)


async def aprices(settings: ConnectionSettings, listing: str = CHAT_MODELS) -> dict[str, ModelPrice]:
    """Async :func:`prices`."""
    key = (settings, listing)
    table = _cached(key)
    if table is not None:
        return table
    try:
        return _store(key, parse_prices(await aget_json(settings, listing)), None)
    except OpenRouterError as err:
        return _store(key, None, err)


def listing_for(body: Mapping[str, Any]) -> str:
    """The price list that prices ``body``: embeddings models for an ``input`` body, chat models otherwise."""
    return EMBEDDING_MODELS if "input" in body and "messages" not in body else CHAT_MODELS


def clear() -> None:
    """Forget every cached price list."""
    with _lock:
        _cache.clear()


def _text_tokens(value: Any) -> int:
    if isinstance(value, str):
        return -(-len(value) // CHARS_PER_TOKEN)
    if isinstance(value, list):
        total = 0
        for part in value:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                total += _text_tokens(part["text"])
            elif isinstance(part, str):
                total += _text_tokens(part)
            else:
                total += TOKENS_PER_PART
        return total
    return 0 if value is None else _text_tokens(json.dumps(value, default=str))


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """A generous estimate of the prompt tokens of a chat (``messages``) or embeddings (``input``) body."""
    if "input" in body and "messages" not in body:
        return _text_tokens(body["input"])
    total = 0
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            total += TOKENS_PER_MESSAGE + _text_tokens(message.get("content"))
            if message.get("tool_calls"):
                total += _text_tokens(json.dumps(message["tool_calls"], default=str))
    if body.get("tools"):
        total += _text_tokens(json.dumps(body["tools"], default=str))
    return total


def ceiling(table: Mapping[str, ModelPrice], body: Mapping[str, Any]) -> Decimal | None:
    """The most ``body`` can cost with these prices; ``None`` when a candidate model has no price."""
    candidates = [body.get("model"), *(body.get("models") or ())]
    prompt = prompt_tokens(body)
    embeddings = "input" in body and "messages" not in body
    worst: Decimal | None = None
    for model in dict.fromkeys(m for m in candidates if isinstance(m, str)):
        price = table.get(model)
        if price is None:
            return None
        asked = body.get("max_tokens") or body.get("max_completion_tokens")
        completion = 0 if embeddings else (asked if isinstance(asked, int) else None) or (
            price.max_completion_tokens or DEFAULT_COMPLETION_TOKENS)  # fmt: skip
        cost = price.prompt * prompt + price.completion * completion + price.request
        worst = cost if worst is None else max(worst, cost)
    return worst
