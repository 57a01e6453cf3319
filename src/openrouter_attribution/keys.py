"""A key per end-user on OpenRouter: provisioned on demand, bound to the user, limited by OpenRouter.

:class:`OpenRouterUserKeys` gives every end-user an OpenRouter API key of their own, created through
the management API (``POST /keys`` with ``external: {user, api_key}``,
https://openrouter.ai/docs/api-reference/api-keys/create-keys) the first time a call is made for
them. OpenRouter then enforces each user's ``limit`` itself, for every process, host and tool that
uses the key, and ``GET /keys/{hash}`` is that user's usage straight from OpenRouter's meter.

Nothing secret is stored anywhere: a user's key value is derived from ``secret`` and the user id
(HMAC-SHA-256) and handed to OpenRouter as the partner-supplied key, which OpenRouter keeps only as a
hash. Every process that holds the same ``secret`` derives the same value, so concurrent first calls
for one user create one key: the second ``POST /keys`` is refused as a duplicate (409), which means
the key exists. Known users are cached in memory; a warm call sends no management request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from openrouter_attribution import environment
from openrouter_attribution.errors import APIError, AuthenticationError, BudgetExceededError, ConfigurationError
from openrouter_attribution.keywords import checked_keywords

__all__ = ["MANAGEMENT_KEY_ENV", "SECRET_ENV", "KeyManager", "OpenRouterUserKeys", "UserKeyUsage"]

MANAGEMENT_KEY_ENV = environment.MANAGEMENT_KEY_ENV
"""Environment variable read for ``management_key`` when it is not given."""
SECRET_ENV = environment.USER_KEY_SECRET_ENV
"""Environment variable read for ``secret`` when it is not given."""
MIN_SECRET_LENGTH = 32
KEY_PREFIX = "sk-or-v1-"
DEFAULT_NAME_PREFIX = "user:"

LimitReset = Literal["daily", "weekly", "monthly"]
Limit = Decimal | float | int | None
Limits = Limit | Mapping[str, Limit] | Callable[[str], Limit]


@dataclass(frozen=True, slots=True)
class UserKeyUsage:
    """One end-user's key as OpenRouter meters it (``GET /keys/{hash}``); amounts in USD."""

    user: str
    """The end-user id as sent (the key's ``external.user``)."""
    hash: str
    """The key's hash: how OpenRouter names it (``/keys/{hash}``)."""
    usage: Decimal
    """Spent since the key was created."""
    usage_daily: Decimal
    usage_weekly: Decimal
    usage_monthly: Decimal
    limit: Decimal | None
    """The key's spending limit (``None``: none)."""
    limit_remaining: Decimal | None
    """What is left of the limit in the current window."""
    limit_reset: str | None
    """``"daily"``, ``"weekly"``, ``"monthly"`` (UTC) or ``None`` (the limit never resets)."""
    disabled: bool

    @classmethod
    def parse(cls, user: str, data: Mapping[str, Any]) -> UserKeyUsage:
        """Build from the ``data`` object of OpenRouter's key answers."""

        def amount(name: str) -> Decimal | None:
            value = data.get(name)
            return None if value is None else Decimal(str(value))

        return cls(
            user=user, hash=str(data["hash"]), usage=amount("usage") or Decimal(0),
            usage_daily=amount("usage_daily") or Decimal(0), usage_weekly=amount("usage_weekly") or Decimal(0),
            usage_monthly=amount("usage_monthly") or Decimal(0), limit=amount("limit"),
            limit_remaining=amount("limit_remaining"), limit_reset=data.get("limit_reset"),
            disabled=bool(data.get("disabled")),
        )  # fmt: skip


@checked_keywords
class OpenRouterUserKeys:
    """Per-end-user OpenRouter keys, created on the first call for each user and limited by OpenRouter.

    Pass it as ``user_keys=`` to any model or embeddings class: after attribution and the identity
    policy, each request is sent with the key of its user as sent (and still carries ``user``); a call
    without a user uses the model's own ``api_key``. A key over its limit is refused by OpenRouter and
    raises :class:`~openrouter_attribution.BudgetExceededError` (``kind="openrouter_key"``), not retried.

    Args:
        secret: Derives every user's key (HMAC-SHA-256 of the user id), at least 32 characters; defaults
            to ``OPENROUTER_USER_KEY_SECRET``. Keep it as you keep an API key: it is never sent, stored,
            logged or pickled, and the same secret must be used by every process of the app.
        management_key: An OpenRouter management key (it creates keys; it cannot call models); defaults
            to ``OPENROUTER_MANAGEMENT_KEY``.
        limit: Each new key's spending limit in USD: one amount, a mapping of user id (as sent) to amount,
            or a function of the user id; ``None`` (or a user missing from the mapping): no limit.
        limit_reset: When limits reset: ``"daily"`` (UTC midnight), ``"weekly"`` (Mondays), ``"monthly"``,
            or ``None`` (never).
        name_prefix: Keys are named ``name_prefix + user`` on OpenRouter.
        include_byok_in_limit: Whether bring-your-own-key usage counts against the limit.
        base_url: API base URL; defaults to ``OPENROUTER_BASE_URL`` or OpenRouter's.
        timeout: Seconds a management request may take.

    Raises:
        ConfigurationError: no secret or management key, a secret shorter than 32 characters, a bad
            ``limit_reset`` or ``base_url``.

    Example:
        >>> from openrouter_attribution import OpenRouterUserKeys
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server:
        ...     keys = OpenRouterUserKeys(secret="s" * 32, management_key=server.management_key,
        ...                               base_url=server.base_url, limit=5, limit_reset="monthly")
        ...     key = keys.key_for("app_42")           # created now, on OpenRouter
        ...     keys.key_for("app_42") == key          # cached: no request
        ...     (keys.usage("app_42").limit == 5, [k["external_user"] for k in server.created_keys()])
        True
        (True, ['app_42'])
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        management_key: str | None = None,
        limit: Limits = None,
        limit_reset: LimitReset | None = None,
        name_prefix: str = DEFAULT_NAME_PREFIX,
        include_byok_in_limit: bool | None = None,
        base_url: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        secret = _secret_value(secret) or environment.user_key_secret() or ""
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"OpenRouterUserKeys needs secret=... (or {SECRET_ENV}) of at least {MIN_SECRET_LENGTH} characters: "
                "every user's key is derived from it. Generate one with `python -c \"import secrets; "
                'print(secrets.token_urlsafe(32))"` and keep it like an API key.'
            )
        if limit_reset not in (None, "daily", "weekly", "monthly"):
            raise ConfigurationError(f"limit_reset must be 'daily', 'weekly', 'monthly' or None, got {limit_reset!r}.")
        self._secret = secret.encode()
        self.limit = limit
        self.limit_reset = limit_reset
        self.include_byok_in_limit = include_byok_in_limit
        self.manager = KeyManager(
            management_key=management_key, base_url=base_url, name_prefix=name_prefix, timeout=timeout
        )
        """The management API client (the users' keys on OpenRouter)."""
        self._known: dict[str, str] = {}
        """User id -> key value, for users whose key exists."""
        self._hashes: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenRouterUserKeys({self.manager!r}, limit_reset={self.limit_reset!r})"

    def __getstate__(self) -> None:
        raise TypeError(
            "OpenRouterUserKeys cannot be pickled: it holds the secret and the management key. A pickled model "
            "leaves it out; set user_keys= again after unpickling."
        )

    # -- the call path -------------------------------------------------------------------------------

    def derive(self, user: str) -> str:
        """The key value of ``user`` (as sent): the same in every process holding the same secret."""
        return KEY_PREFIX + hmac.new(self._secret, user.encode(), hashlib.sha256).hexdigest()

    def key_for(self, user: str) -> str:
        """``user``'s key, created on OpenRouter first if this process does not know it yet.

        Raises:
            AuthenticationError: OpenRouter refused the management key.
            APIError: OpenRouter refused to create the key.
        """
        key = self._known.get(user)
        if key is not None:
            return key
        with self._user_lock(user):
            key = self._known.get(user)
            if key is None:
                key = self._provision(user)
        return key

    async def akey_for(self, user: str) -> str:
        """Async :meth:`key_for` (a first call provisions on a worker thread; a warm one returns at once)."""
        key = self._known.get(user)
        if key is not None:
            return key
        return await asyncio.to_thread(self.key_for, user)

    def forget(self, user: str) -> None:
        """Drop ``user`` from the cache: the next call checks (and re-creates) their key."""
        self._known.pop(user, None)
        self._hashes.pop(user, None)

    def _user_lock(self, user: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(user, threading.Lock())

    def _provision(self, user: str) -> str:
        key = self.derive(user)
        settings: dict[str, Any] = {}
        limit = self._limit_of(user)
        if limit is not None:
            settings["limit"] = float(limit)
        if self.limit_reset is not None:
            settings["limit_reset"] = self.limit_reset
        if self.include_byok_in_limit is not None:
            settings["include_byok_in_limit"] = self.include_byok_in_limit
        key_hash = self.manager.create(user, key, settings)
        if key_hash is not None:
            self._hashes[user] = key_hash
        self._known[user] = key
        return key

    def limit_error(self, user: str, err: APIError) -> BudgetExceededError | None:
        """The ``BudgetExceededError`` for ``err`` when it says ``user``'s key is over its OpenRouter limit.

        OpenRouter documents a 402 with ``error.metadata.limit_source = "openrouter_key_limit"`` for a key
        over its limit (a 402 without it is the account's own credits); deployed OpenRouter has also
        answered 403 "Key limit exceeded", which carries no code to tell it by, so its text is read.
        """
        source = (err.metadata or {}).get("limit_source")
        if not ((err.status_code == 402 and source == "openrouter_key_limit")
                or (err.status_code == 403 and "key limit" in err.message.lower())):  # fmt: skip
            return None
        limit = self._limit_of(user) or Decimal(0)
        period = {"daily": "day", "weekly": "week", "monthly": "month"}.get(self.limit_reset or "", "total")
        return BudgetExceededError(
            f"OpenRouter refused the call: the OpenRouter key of the user {user!r} is over its limit "
            f"(${limit}, {self.limit_reset or 'never reset'}). The limit is OpenRouter's own: raise it with "
            "user_keys.set_limit(...) or `openrouter-attribution keys set-limit`, or wait for the reset.",
            user=user, limit=limit, spent=limit, reserved=Decimal(0), requested=Decimal(0), kind="openrouter_key",
            period=period, resets_at=_next_reset(self.limit_reset),
        )  # fmt: skip

    def _limit_of(self, user: str) -> Decimal | None:
        limit = self.limit
        if callable(limit):
            limit = limit(user)
        elif isinstance(limit, Mapping):
            limit = limit.get(user)
        return None if limit is None else Decimal(str(limit))

    # -- management (OpenRouter's meter and settings of each user's key) ------------------------------

    def usage(self, user: str) -> UserKeyUsage:
        """``user``'s spend, limit and what is left of it, from OpenRouter (``GET /keys/{hash}``).

        Raises:
            KeyError: ``user`` has no key on OpenRouter.
        """
        return self.manager.usage(user, self._hashes.get(user))

    async def ausage(self, user: str) -> UserKeyUsage:
        """Async :meth:`usage`."""
        return await asyncio.to_thread(self.usage, user)

    def set_limit(self, user: str, amount: Decimal | float | None, *, reset: LimitReset | None = None) -> UserKeyUsage:
        """Change ``user``'s limit on OpenRouter (``None``: no limit); ``reset`` changes when it resets."""
        return self.manager.set_limit(user, amount, reset=reset)

    def disable(self, user: str) -> UserKeyUsage:
        """Disable ``user``'s key: OpenRouter refuses its calls (and this library does not re-create it)."""
        return self.manager.disable(user)

    def list_keys(self) -> list[UserKeyUsage]:
        """Every end-user key of this app (``external.user`` set, named with ``name_prefix``)."""
        return self.manager.list_keys()


class KeyManager:
    """OpenRouter's management API for end-user keys: create, read, limit, disable, list.

    Used by :class:`OpenRouterUserKeys` and by ``openrouter-attribution keys``; it needs only the
    management key (never a user's key or the secret).

    Args:
        management_key: An OpenRouter management key; defaults to ``OPENROUTER_MANAGEMENT_KEY``.
        base_url: API base URL; defaults to ``OPENROUTER_BASE_URL`` or OpenRouter's.
        name_prefix: The prefix of the end-user keys' names (``name_prefix + user``).
        timeout: Seconds a management request may take.

    Raises:
        ConfigurationError: no management key, or a bad ``base_url``.
    """

    def __init__(
        self,
        *,
        management_key: str | None = None,
        base_url: str | None = None,
        name_prefix: str = DEFAULT_NAME_PREFIX,
        timeout: float | None = 30.0,
    ) -> None:
        from openrouter_attribution.options import _checked_base_url
        from openrouter_attribution.transport import ConnectionSettings

        management = _secret_value(management_key) or environment.management_key() or ""
        if not management:
            raise ConfigurationError(
                f"Per-user keys need management_key=... (or {MANAGEMENT_KEY_ENV}): an OpenRouter management key, "
                "which creates and manages the users' keys."
            )
        self.name_prefix = name_prefix
        self._connection = ConnectionSettings(
            api_key=management, base_url=_checked_base_url(base_url or environment.base_url()), timeout=timeout,
            max_retries=2,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"KeyManager(base_url={self._connection.base_url!r}, name_prefix={self.name_prefix!r})"

    def __getstate__(self) -> None:
        raise TypeError("A KeyManager cannot be pickled: it holds the management key.")

    def create(self, user: str, key: str, settings: Mapping[str, Any]) -> str | None:
        """Create ``user``'s key with the value ``key``; its hash, or ``None`` when that value exists already
        (another process created it first: OpenRouter refuses a duplicate with 409). Registers the user."""
        body = {"name": f"{self.name_prefix}{user}", "external": {"user": user, "api_key": key}, **settings}
        try:
            # Not retried: the SDK retries a 409, which here means the key exists (another process made it).
            key_hash: str | None = str(self._call("post", "/keys", body, retries=0)["data"]["hash"])
        except APIError as err:
            if err.status_code != 409:
                raise
            key_hash = None
        self._call("post", "/external-users", {"user": user})
        return key_hash

    def usage(self, user: str, key_hash: str | None = None) -> UserKeyUsage:
        """``user``'s key as OpenRouter meters it (``key_hash``, when known, saves looking it up).

        Raises:
            KeyError: ``user`` has no key on OpenRouter.
        """
        return UserKeyUsage.parse(user, self._call("get", f"/keys/{key_hash or self._hash_of(user)}")["data"])

    def set_limit(self, user: str, amount: Decimal | float | None, *, reset: LimitReset | None = None) -> UserKeyUsage:
        """Change ``user``'s limit on OpenRouter (``None``: no limit); ``reset`` changes when it resets."""
        body: dict[str, Any] = {"limit": None if amount is None else float(Decimal(str(amount)))}
        if reset is not None:
            body["limit_reset"] = reset
        return UserKeyUsage.parse(user, self._call("patch", f"/keys/{self._hash_of(user)}", body)["data"])

    def disable(self, user: str) -> UserKeyUsage:
        """Disable ``user``'s key: OpenRouter refuses its calls."""
        return UserKeyUsage.parse(user, self._call("patch", f"/keys/{self._hash_of(user)}", {"disabled": True})["data"])

    def list_keys(self) -> list[UserKeyUsage]:
        """Every key bound to an end-user (``external.user``) whose name starts with ``name_prefix``."""
        return [UserKeyUsage.parse(data["external_user"], data) for data in self._all_keys()
                if data.get("external_user") and str(data.get("name", "")).startswith(self.name_prefix)]  # fmt: skip

    def _hash_of(self, user: str) -> str:
        for data in self._all_keys():
            if data.get("external_user") == user and str(data.get("name", "")).startswith(self.name_prefix):
                return str(data["hash"])
        raise KeyError(f"no OpenRouter key for the user {user!r} (a call for them creates it)")

    def _all_keys(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self._call("get", "/keys", params={"offset": str(len(found)), "include_disabled": "true"})["data"]
            found += page
            if not page:
                return found

    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None, retries: int | None = None
    ) -> Any:
        from openrouter_attribution.transport import sync_client, translated_errors

        client = sync_client(self._connection)
        options: dict[str, Any] = {"params": params or {}}
        if retries is not None:
            options["max_retries"] = retries
        try:
            with translated_errors():
                call = getattr(client, method)
                if method == "get":
                    return call(quote(path), cast_to=object, options=options)
                return call(quote(path), cast_to=object, body=body, options=options)
        except AuthenticationError as err:
            raise AuthenticationError(
                f"OpenRouter refused the management key (management_key= or {MANAGEMENT_KEY_ENV}): {err.message}",
                status_code=err.status_code, code=err.code, metadata=err.metadata,
            ) from None  # fmt: skip


def _next_reset(reset: str | None) -> datetime | None:
    """When a ``daily`` / ``weekly`` / ``monthly`` OpenRouter limit next resets (UTC midnight)."""
    if reset is None:
        return None
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == "daily":
        return today + timedelta(days=1)
    if reset == "weekly":
        return today + timedelta(days=7 - today.weekday())
    return (today.replace(day=1) + timedelta(days=32)).replace(day=1)


def _secret_value(value: Any) -> str:
    """A ``str`` or pydantic ``SecretStr``'s value ("" for None)."""
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)
