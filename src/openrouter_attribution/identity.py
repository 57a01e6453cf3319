"""End-user ids for OpenRouter's ``user`` field: validation, prefix, personal-data checks, pseudonyms.

OpenRouter attributes a request to one of *your* end-users through the ``user``
field (string, at most 256 characters) and recommends stable internal ids, a
consistent format such as ``app_<internal id>`` and never raw personal data
(https://openrouter.ai/docs/guides/administration/user-tracking).
:func:`validate_user_id` is the baseline check every id gets; :class:`UserIdPolicy`
adds a prefix, a custom mapping hook, personal-data detection and keyed
pseudonymisation on top, for ``user`` and also for ``session_id`` and ``metadata`` values.
:data:`DEFAULT_POLICY` is what a model without a ``user_policy`` applies: personal data is
refused. Framework-neutral: only the standard library is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal

from openrouter_attribution import environment
from openrouter_attribution.errors import ConfigurationError, UserIdError
from openrouter_attribution.id_rules import (
    HASH_KEY_ENV,
    MAX_ID_LENGTH,
    check_prefix,
    personal_data_error,
    run_transform,
    utf16_length,
    validate_user_id,
)
from openrouter_attribution.keywords import checked_keywords
from openrouter_attribution.pii import detect_personal_data
from openrouter_attribution.pseudonyms import TOKEN_LENGTH, Secret, find_secret, load_secret

__all__ = [
    "DEFAULT_POLICY",
    "HASH_KEY_ENV",
    "MAX_ID_LENGTH",
    "SentId",
    "UserIdPolicy",
    "detect_personal_data",
    "personal_data_error",
    "validate_user_id",
]

_CACHE_SIZE = 4096

PiiMode = Literal["reject", "hash", "allow"]


class SentId(str):
    """An id that already went through the identity policy: the policy returns it as it is.

    Framework adapters that must show the id *as sent* to the framework's own callbacks before the
    call is made (LlamaIndex dispatches its events with the call's keyword arguments) apply the
    policy first and pass the result on marked, so that a ``transform`` hook is not run twice.
    """

    __slots__ = ()


@checked_keywords
class UserIdPolicy:
    """How end-user ids (and session ids and metadata values) are turned into what OpenRouter receives.

    :meth:`apply` runs, in order: :func:`validate_user_id` on the raw id; the ``transform`` hook (its
    result is validated again); personal-data detection (:func:`detect_personal_data`) handled per
    ``pii``; pseudonymisation; the prefix; a final length check. :meth:`apply_session` gives
    ``session_id`` the same treatment without the prefix and the ``transform`` hook (both are about
    end-user ids): validated, personal data rejected / pseudonymised / allowed per ``pii``, and
    pseudonymised whenever ``hash_all`` is on. :meth:`apply_metadata` checks every ``metadata``
    value for personal data: rejected under ``pii="reject"``, pseudonymised under ``"hash"``.

    Pseudonyms are ``"h_"`` followed by 32 lowercase base32 characters (34 in all): 15 bytes of
    HMAC-SHA256 of the id (without the prefix) under the key, then a 5-byte keyed tag of those bytes
    (:mod:`openrouter_attribution.pseudonyms`; session ids and metadata values use keys of their own,
    so their pseudonyms never equal a user's). The same key and id always give the same pseudonym;
    without the key it can be neither reversed nor confirmed. The tag lets :meth:`apply` recognise its
    own output: an id that is (prefix +) a pseudonym made with this key is returned as is, so
    ``apply(apply(x)) == apply(x)``. An id that already starts with the prefix is not prefixed again
    (``"app_42"`` and ``"42"`` are the same user); with a ``transform`` this idempotence holds only
    if the hook itself is idempotent.

    Results are memoised per raw id (LRU, 4096 ids), so ``transform`` must be a pure function; failures
    are never cached. The key is never stored in a public attribute, shown by ``repr``, put in a message
    or pickled (a pickle carries a fingerprint and is restored from a live policy with the same key or
    from ``OPENROUTER_USER_HASH_KEY``).

    Examples:
        >>> key = "example-key-0123456789"
        >>> policy = UserIdPolicy(prefix="app_", hash_key=key, pii="hash", hash_all=False)
        >>> policy.apply("42"), policy.apply("app_42")
        ('app_42', 'app_42')
        >>> token = policy.apply("ada@example.com")
        >>> token.startswith("app_h_"), len(token), policy.apply(token) == token
        (True, 38, True)
        >>> policy.apply_session("chat-7"), len(policy.apply_session("ada@example.com"))
        ('chat-7', 34)
        >>> try:
        ...     UserIdPolicy(pii="reject").apply("ada@example.com")
        ... except UserIdError as err:
        ...     print(err.rule)
        email
    """

    __slots__ = (
        "_apply_cached",
        "_hash_all",
        "_key_from_env",
        "_metadata_cached",
        "_pii",
        "_prefix",
        "_require_user",
        "_secret",
        "_session_cached",
        "_transform",
    )
    _prefix: str
    _pii: PiiMode
    _transform: Callable[[str], str] | None
    _hash_all: bool
    _require_user: bool
    _secret: Secret | None
    _key_from_env: bool
    _apply_cached: Callable[[str], str]
    _session_cached: Callable[[str], str]
    _metadata_cached: Callable[[str], str]

    def __init__(
        self,
        *,
        prefix: str | None = None,
        hash_key: str | bytes | None = None,
        pii: PiiMode = "reject",
        transform: Callable[[str], str] | None = None,
        hash_all: bool | None = None,
        require_user: bool = False,
    ) -> None:
        """Build a policy; every problem is reported here, never at call time.

        Args:
            prefix: Namespace put in front of every user id exactly once, e.g. ``"app_"``: printable, no
                whitespace, at most 64 characters.
            hash_key: Secret key for pseudonyms (at least 16 bytes). ``None`` reads the environment
                variable ``OPENROUTER_USER_HASH_KEY`` now, at construction; unset or empty means no key.
            pii: What to do with ids and metadata values containing personal data: ``"reject"`` raises
                ``UserIdError``, ``"hash"`` sends a pseudonym (needs a key), ``"allow"`` sends them unchanged.
            transform: Pure function mapping a validated raw user id to the id to send (e.g. internal
                account to billing id). Its exceptions become ``UserIdError(rule="transform_failed")``,
                except a ``UserIdError`` it raises itself, which propagates unchanged.
            hash_all: ``True`` pseudonymises every user and session id, ``False`` only personal data under
                ``pii="hash"``; ``None`` means ``True`` when a key is configured.
            require_user: ``True`` makes the models that use this policy refuse calls without a user
                (``MissingUserError``), whatever their own ``require_user`` says.

        Raises:
            ConfigurationError: Invalid argument, a key that is too short, or hashing asked for without a key.
        """
        if pii not in ("reject", "hash", "allow"):
            raise ConfigurationError("pii must be 'reject', 'hash' or 'allow'.")
        if transform is not None and not callable(transform):
            raise ConfigurationError(f"transform must be callable, got {type(transform).__name__}.")
        if not (hash_all is None or isinstance(hash_all, bool)) or not isinstance(require_user, bool):
            raise ConfigurationError("hash_all must be True, False or None and require_user a bool.")
        key_from_env = hash_key is None
        if key_from_env:
            hash_key = environment.hash_key()
        source = f"the {HASH_KEY_ENV} environment variable" if key_from_env else "hash_key"
        secret = None if hash_key is None else load_secret(hash_key, source)
        resolved = secret is not None if hash_all is None else hash_all
        if secret is None and (pii == "hash" or resolved):
            raise ConfigurationError(
                "pseudonymising ids needs a key: pass hash_key=... (at least 16 random bytes) or set "
                f"{HASH_KEY_ENV}; or use pii='reject' with hash_all=False."
            )
        self._init(check_prefix(prefix), pii, transform, resolved, require_user, secret, key_from_env)

    def _init(
        self,
        prefix: str,
        pii: PiiMode,
        transform: Callable[[str], str] | None,
        hash_all: bool,
        require_user: bool,
        secret: Secret | None,
        key_from_env: bool,
    ) -> None:
        put = object.__setattr__
        put(self, "_prefix", prefix)
        put(self, "_pii", pii)
        put(self, "_transform", transform)
        put(self, "_hash_all", hash_all)
        put(self, "_require_user", require_user)
        put(self, "_secret", secret)
        put(self, "_key_from_env", key_from_env and secret is not None)
        memo = functools.lru_cache(maxsize=_CACHE_SIZE)
        put(self, "_apply_cached", memo(self._apply_uncached))
        put(self, "_session_cached", memo(self._session_uncached))
        put(self, "_metadata_cached", memo(self._metadata_uncached))

    @property
    def prefix(self) -> str | None:
        """Namespace put in front of every user id, or ``None``."""
        return self._prefix or None

    @property
    def pii(self) -> PiiMode:
        """Handling of ids that contain personal data: ``"reject"``, ``"hash"`` or ``"allow"``."""
        return self._pii

    @property
    def transform(self) -> Callable[[str], str] | None:
        """The custom mapping hook, or ``None``."""
        return self._transform

    @property
    def hash_all(self) -> bool:
        """Whether every user and session id is pseudonymised (``None`` at construction resolved against the key)."""
        return self._hash_all

    @property
    def require_user(self) -> bool:
        """Whether callers must refuse to send a request without an end-user."""
        return self._require_user

    @property
    def has_hash_key(self) -> bool:
        """Whether a pseudonymisation key is configured (the key itself is not accessible)."""
        return self._secret is not None

    def apply(self, raw: str) -> str:
        """Turn an end-user id into the value to send in OpenRouter's ``user`` field.

        Args:
            raw: Your id for the end-user (a :class:`SentId` is returned as it is).

        Returns:
            A non-empty str of at most 256 characters without control characters.

        Raises:
            UserIdError: The id breaks a rule of :func:`validate_user_id`, contains personal data under
                ``pii="reject"`` (rule ``email``, ``phone``, ``ip_address`` or ``payment_card``), the
                ``transform`` hook failed (``transform_failed``) or the prefixed id is too long.
        """
        if type(raw) is SentId:  # before the cache: SentId("x") and "x" are equal keys
            return str(raw)
        if not isinstance(raw, str):
            validate_user_id(raw)  # raises not_string; keeps unhashable values away from the cache
        return self._apply_cached(raw)

    def apply_session(self, raw: str) -> str:
        """Turn a session id into the value to send in OpenRouter's ``session_id`` field.

        Raises:
            UserIdError: The id breaks a rule of :func:`validate_user_id` or contains personal data
                under ``pii="reject"``.
        """
        if type(raw) is SentId:
            return str(raw)
        if not isinstance(raw, str):
            validate_user_id(raw, field="session_id")
        return self._session_cached(raw)

    def apply_metadata(self, metadata: Mapping[str, Any]) -> Mapping[str, Any]:
        """Check the values of OpenRouter ``metadata`` for personal data (the same object when unchanged).

        Non-string values are left for the request validation, which refuses them.

        Raises:
            UserIdError: A value contains personal data under ``pii="reject"``; the message names the key.
        """
        if self._pii == "allow" or not isinstance(metadata, Mapping):
            return metadata
        changed: dict[str, Any] | None = None
        for key, value in metadata.items():
            if not isinstance(value, str):
                continue
            try:
                sent = self._metadata_cached(value)
            except UserIdError as err:
                raise personal_data_error(f"`openrouter_metadata[{key!r}]`", err.rule) from None
            if sent is not value and sent != value:
                changed = dict(metadata) if changed is None else changed
                changed[key] = sent
        return metadata if changed is None else changed

    def _apply_uncached(self, raw: str) -> str:
        validate_user_id(raw)
        prefix, secret = self._prefix, self._secret
        if secret is not None and (self._hash_all or self._pii == "hash"):
            body = raw[len(prefix) :] if raw.startswith(prefix) else raw
            if secret.made(body):  # already a pseudonym of this key: leave it alone
                return prefix + body
        value = raw if self._transform is None else run_transform(self._transform, raw)
        rule = detect_personal_data(value)
        if rule is not None and self._pii == "reject":
            raise personal_data_error("`user`", rule)
        body = value[len(prefix) :] if value.startswith(prefix) else value
        if not body.strip():
            raise UserIdError(f"user id is only the prefix {prefix!r}; pass the id after it.", rule="empty")
        if secret is not None and (self._hash_all or (rule is not None and self._pii == "hash")):
            body = secret.token(body)
        result = prefix + body
        if utf16_length(result) > MAX_ID_LENGTH:
            raise UserIdError(
                f"user id is {utf16_length(result)} characters long with the prefix {prefix!r}; OpenRouter "
                f"accepts at most {MAX_ID_LENGTH}. Use a shorter id or hash_all=True (pseudonyms are "
                f"{len(prefix) + TOKEN_LENGTH} characters).",
                rule="too_long",
            )
        return result

    def _session_uncached(self, raw: str) -> str:
        validate_user_id(raw, field="session_id")
        secret = self._secret
        if secret is not None and (self._hash_all or self._pii == "hash") and secret.made(raw):
            return raw
        rule = detect_personal_data(raw)
        if rule is not None and self._pii == "reject":
            raise personal_data_error("`session_id`", rule)
        if secret is not None and (self._hash_all or (rule is not None and self._pii == "hash")):
            return secret.token(raw, "session")
        return raw

    def _metadata_uncached(self, value: str) -> str:
        rule = detect_personal_data(value)
        if rule is None:
            return value
        if self._pii == "reject" or self._secret is None:
            raise personal_data_error("a metadata value", rule)
        return self._secret.token(value, "metadata")

    def describe(self) -> dict[str, Any]:
        """The policy's settings as JSON-friendly values (the key only as ``has_hash_key``).

        Used when a model holding the policy is dumped with ``model_dump()`` / ``model_dump_json()``.
        """
        hook = None if self._transform is None else getattr(self._transform, "__qualname__", "<callable>")
        return {"prefix": self.prefix, "pii": self._pii, "hash_all": self._hash_all,
                "has_hash_key": self.has_hash_key, "transform": hook, "require_user": self._require_user}  # fmt: skip

    def _identity(self) -> tuple[object, ...]:
        fingerprint = None if self._secret is None else self._secret.fingerprint
        return (self._prefix, self._pii, self._hash_all, self._require_user, fingerprint, self._transform)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserIdPolicy):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity()[:-1])  # the hook may be unhashable; equality still compares it

    def __repr__(self) -> str:
        key = "None"
        if self._secret is not None:
            key = f"<set from ${HASH_KEY_ENV}>" if self._key_from_env else "<set>"
        hook = None if self._transform is None else getattr(self._transform, "__qualname__", "<callable>")
        return (
            f"UserIdPolicy(prefix={self.prefix!r}, hash_key={key}, pii={self._pii!r}, transform={hook}, "
            f"hash_all={self._hash_all!r}, require_user={self._require_user!r})"
        )

    __str__ = __repr__

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("UserIdPolicy is immutable; build a new one instead.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("UserIdPolicy is immutable; build a new one instead.")

    def __copy__(self) -> UserIdPolicy:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> UserIdPolicy:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        fingerprint = None if self._secret is None else self._secret.fingerprint
        state = (
            self._prefix,
            self._pii,
            self._transform,
            self._hash_all,
            self._require_user,
            fingerprint,
            self._key_from_env,
        )
        return (_restore_policy, state)


def _restore_policy(
    prefix: str,
    pii: PiiMode,
    transform: Callable[[str], str] | None,
    hash_all: bool,
    require_user: bool,
    fingerprint: bytes | None,
    key_from_env: bool,
) -> UserIdPolicy:
    secret = None if fingerprint is None else find_secret(fingerprint)
    env_key = environment.hash_key() if fingerprint is not None and secret is None else None
    if env_key is not None:
        candidate = load_secret(env_key, f"the {HASH_KEY_ENV} environment variable")
        secret = candidate if candidate.fingerprint == fingerprint else None
    if fingerprint is not None and secret is None:
        raise ConfigurationError(
            "cannot unpickle a UserIdPolicy with a hash key: pickles never carry the key. Set "
            f"{HASH_KEY_ENV} to the same key in this process, or build the policy here."
        )
    policy = UserIdPolicy.__new__(UserIdPolicy)
    policy._init(prefix, pii, transform, hash_all, require_user, secret, key_from_env)
    return policy


def _default_policy() -> UserIdPolicy:
    # Built without reading OPENROUTER_USER_HASH_KEY: a model without a policy never hashes.
    policy = UserIdPolicy.__new__(UserIdPolicy)
    policy._init("", "reject", None, False, False, None, False)
    return policy


DEFAULT_POLICY = _default_policy()
"""What a model without a ``user_policy`` applies: the limits of :func:`validate_user_id` and
personal data refused in ``user``, ``session_id`` and ``metadata`` values; no prefix, no pseudonyms."""
