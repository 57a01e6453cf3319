"""OpenRouter's key management API, as the fake server emulates it.

A management key (``FakeOpenRouter.management_key``) creates, lists, reads, updates and deletes API
keys (``/keys``, ``/keys/{hash}``) and registers end-users (``/external-users``); it cannot call
models. A key created with ``external: {user, api_key}`` is bound to that user and, when the partner
supplies ``api_key``, takes that value (at least 32 characters, stored only as its SHA-256 hash; a
value already in use is refused with 409). Each key meters its spend; a key over its ``limit`` is
refused by the server itself with OpenRouter's 402 (``metadata.limit_source = "openrouter_key_limit"``).
Limits reset at UTC midnight (``daily``), on Mondays (``weekly``) or on the 1st (``monthly``), read
from an injectable clock. Request bodies are validated with the ``openrouter`` SDK's own models
(``CreateKeysRequestBody``, ``UpdateKeysRequestBody``, ``CreateExternalUserRequest``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["KeyEntry", "KeyStore", "is_management_path", "management_reply", "reply_cost", "window_start"]

MIN_PARTNER_KEY_LENGTH = 32
MAX_EXTERNAL_USER_LENGTH = 512


def window_start(reset: str | None, now: float) -> float:
    """Epoch seconds at which the current ``daily`` / ``weekly`` / ``monthly`` window began (UTC)."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == "daily":
        return day.timestamp()
    if reset == "weekly":
        return (day - timedelta(days=day.weekday())).timestamp()
    if reset == "monthly":
        return day.replace(day=1).timestamp()
    return 0.0


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class KeyEntry:
    """One API key: its settings and what it spent (``charges``: time and cost of each call)."""

    hash: str
    name: str
    label: str
    created_at: float
    limit: float | None = None
    limit_reset: str | None = None
    include_byok_in_limit: bool = False
    disabled: bool = False
    external_user: str | None = None
    charges: list[tuple[float, float]] = field(default_factory=list)

    def spent(self, since: float) -> float:
        return sum(cost for at, cost in self.charges if at >= since)

    def over_limit(self, now: float) -> bool:
        return self.limit is not None and self.spent(window_start(self.limit_reset, now)) >= self.limit

    def data(self, now: float) -> dict[str, Any]:
        """The key as ``GET /keys/{hash}`` describes it."""
        used = self.spent(window_start(self.limit_reset, now))
        created = datetime.fromtimestamp(self.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "hash": self.hash, "name": self.name, "label": self.label, "disabled": self.disabled,
            "limit": self.limit, "limit_remaining": None if self.limit is None else max(self.limit - used, 0.0),
            "limit_reset": self.limit_reset, "include_byok_in_limit": self.include_byok_in_limit,
            "usage": self.spent(0.0), "usage_daily": self.spent(window_start("daily", now)),
            "usage_weekly": self.spent(window_start("weekly", now)),
            "usage_monthly": self.spent(window_start("monthly", now)),
            "byok_usage": 0.0, "byok_usage_daily": 0.0, "byok_usage_weekly": 0.0, "byok_usage_monthly": 0.0,
            "created_at": created, "updated_at": None, "last_used_at": None, "creator_user_id": None,
            "external_user": self.external_user, "workspace_id": "default", "expires_at": None,
        }  # fmt: skip


class KeyStore:
    """The keys and external users of one fake server; every method takes the store's lock."""

    def __init__(self, management_key: str, clock: Callable[[], float] = time.time) -> None:
        self.management_key = management_key
        self.clock = clock
        """Seconds since the epoch; replace it to move the server to another day."""
        self._keys: dict[str, KeyEntry] = {}  # by hash
        self._users: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()
            self._users.clear()
            self.clock = time.time

    # -- model calls ---------------------------------------------------------------------------------

    def find(self, token: str) -> KeyEntry | None:
        """The key whose value is ``token`` (``None``: no such key, or it was deleted)."""
        with self._lock:
            return self._keys.get(_hash(token))

    def refusal(self, entry: KeyEntry) -> tuple[int, str, dict[str, Any]] | None:
        """Why a model call on ``entry`` is refused: ``(status, message, metadata)``, or ``None``."""
        with self._lock:
            if entry.disabled:
                return 401, "API key is disabled", {}
            if entry.over_limit(self.clock()):
                return 402, "Key limit exceeded", {"limit_source": "openrouter_key_limit"}
        return None

    def charge(self, entry: KeyEntry, cost: float) -> None:
        with self._lock:
            entry.charges.append((self.clock(), cost))

    def current(self, entry: KeyEntry) -> dict[str, Any]:
        """``GET /key`` for a key of this store."""
        with self._lock:
            data = entry.data(self.clock())
        return {**data, "is_management_key": False, "is_provisioning_key": False, "is_free_tier": False}

    # -- management API ----------------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /keys``: ``(status, payload)``; the body was validated against the SDK's model."""
        external = body.get("external") or {}
        partner_key = external.get("api_key")
        if partner_key is not None and len(partner_key) < MIN_PARTNER_KEY_LENGTH:
            return 400, _error(400, f"external.api_key must be at least {MIN_PARTNER_KEY_LENGTH} characters long")
        key = partner_key or f"sk-or-v1-{secrets.token_hex(32)}"
        with self._lock:
            if _hash(key) in self._keys:
                return 409, _error(409, "An API key with this value already exists")
            entry = KeyEntry(
                hash=_hash(key), name=body["name"], label=f"{key[:12]}...{key[-3:]}", created_at=self.clock(),
                limit=body.get("limit"), limit_reset=body.get("limit_reset"),
                include_byok_in_limit=bool(body.get("include_byok_in_limit", False)),
                external_user=external.get("user"),
            )  # fmt: skip
            self._keys[entry.hash] = entry
            data = entry.data(self.clock())
        return 201, {"data": data, "key": key}

    def page(self, offset: int, include_disabled: bool, limit: int | None = 100) -> dict[str, Any]:
        """``GET /keys``: a page of ``limit`` keys from ``offset`` (``None``: every key), in creation order."""
        with self._lock:
            now = self.clock()
            entries = [e for e in self._keys.values() if include_disabled or not e.disabled]
            end = None if limit is None else offset + limit
            return {"data": [entry.data(now) for entry in entries[offset:end]]}

    def get(self, key_hash: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            entry = self._keys.get(key_hash)
            if entry is None:
                return 404, _error(404, "API key not found")
            return 200, {"data": entry.data(self.clock())}

    def update(self, key_hash: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            entry = self._keys.get(key_hash)
            if entry is None:
                return 404, _error(404, "API key not found")
            for name in ("name", "disabled", "limit", "limit_reset", "include_byok_in_limit"):
                if name in body:
                    setattr(entry, name, body[name])
            return 200, {"data": entry.data(self.clock())}

    def delete(self, key_hash: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self._keys.pop(key_hash, None) is None:
                return 404, _error(404, "API key not found")
        return 200, {"deleted": True}

    def keys_of(self, user: str) -> list[KeyEntry]:
        """The keys bound to ``user`` (``external.user``), in creation order."""
        with self._lock:
            return [entry for entry in self._keys.values() if entry.external_user == user]

    def add_user(self, user: str) -> tuple[int, dict[str, Any]]:
        """``POST /external-users``: registers a tracking id; registering it again returns it."""
        if not user or len(user) > MAX_EXTERNAL_USER_LENGTH or user != user.strip() or "\x00" in user:
            return 400, _error(400, "user must be 1 to 512 characters, without surrounding whitespace or NUL")
        with self._lock:
            known = self._users.get(user)
            if known is None:
                created = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                known = self._users[user] = {"user": user, "created_at": created, "deactivated": False}
            return 200, {"data": dict(known)}

    def get_user(self, user: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            known = self._users.get(user)
        return (404, _error(404, "External user not found")) if known is None else (200, {"data": dict(known)})

    def list_users(self) -> dict[str, Any]:
        with self._lock:
            return {"data": [dict(user) for user in self._users.values()]}

    def deactivate_user(self, user: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            known = self._users.get(user)
            if known is None:
                return 404, _error(404, "External user not found")
            known["deactivated"] = True
        return 200, {"deleted": True}


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "metadata": {}}}


KEYS_PATH = "/api/v1/keys"
EXTERNAL_USERS_PATH = "/api/v1/external-users"


def is_management_path(path: str) -> bool:
    """Whether ``path`` belongs to the management API (a management key only)."""
    return any(path == base or path.startswith(base + "/") for base in (KEYS_PATH, EXTERNAL_USERS_PATH))


def management_reply(store: KeyStore, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    """Answer one management request: ``(status, payload)``.

    Bodies are validated with the ``openrouter`` SDK's models (imported here: only the management
    routes need them).
    """
    from urllib.parse import unquote

    from openrouter.components import CreateExternalUserRequest
    from openrouter.operations import CreateKeysRequestBody, UpdateKeysRequestBody

    from openrouter_attribution.testing.validation import RequestValidationError, validate_with_model

    _, _, rest = path.partition(KEYS_PATH) if path.startswith(KEYS_PATH) else path.partition(EXTERNAL_USERS_PATH)
    item = unquote(rest.lstrip("/")) or None
    try:
        if path.startswith(KEYS_PATH):
            if item is None and method == "POST":
                validate_with_model(CreateKeysRequestBody, body)
                return store.create(body)
            if item is None and method == "GET":
                offset = int(query.get("offset", "0") or 0)
                return 200, store.page(offset, query.get("include_disabled") == "true")
            if item is not None and method == "GET":
                return store.get(item)
            if item is not None and method == "PATCH":
                validate_with_model(UpdateKeysRequestBody, body)
                return store.update(item, body)
            if item is not None and method == "DELETE":
                return store.delete(item)
        else:
            if item is None and method == "POST":
                validate_with_model(CreateExternalUserRequest, body)
                return store.add_user(body["user"])
            if item is None and method == "GET":
                return 200, store.list_users()
            if item is not None and method == "GET":
                return store.get_user(item)
            if item is not None and method == "DELETE":
                return store.deactivate_user(item)
    except RequestValidationError as err:
        return 400, _error(400, err.message)
    except ValueError:
        return 400, _error(400, "offset must be a whole number")
    return 405, _error(405, f"Method {method} not allowed on {path}")


def reply_cost(status: int, payload: Any, events: list[bytes] | None) -> float:
    """What a model call's answer reported as ``usage.cost`` (0 when it reported none): the JSON body's,
    or the last event of a stream that carries usage (a Responses stream's in its ``response``)."""
    if events is None:
        usage = payload.get("usage") if status == 200 and isinstance(payload, dict) else None
        return float(usage.get("cost") or 0.0) if isinstance(usage, dict) else 0.0
    import json

    for event in reversed(events):
        data = event.partition(b"data: ")[2].strip()
        if data.startswith(b"{") and b'"usage"' in data:
            event = json.loads(data)
            usage = event.get("usage") or (event.get("response") or {}).get("usage")
            if isinstance(usage, dict):
                return float(usage.get("cost") or 0.0)
    return 0.0
