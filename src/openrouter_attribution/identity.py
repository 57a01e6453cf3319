"""End-user ids for OpenRouter's ``user`` field: validation, prefix, personal-data checks, pseudonyms.

OpenRouter attributes a request to one of *your* end-users through the ``user``
field (string, at most 256 characters) and recommends stable internal ids, a
consistent format such as ``app_<internal id>`` and never raw personal data
(https://openrouter.ai/docs/guides/administration/user-tracking).
:func:`validate_user_id` is the baseline check every id gets; :class:`UserIdPolicy`
adds a prefix, a custom mapping hook, personal-data detection and keyed
pseudonymisation on top. Framework-neutral: only the standard library is used.
"""

from __future__ import annotations

import base64
import functools
import hmac
import os
import re
import weakref
from collections.abc import Callable
from typing import Literal, NoReturn

from openrouter_attribution.errors import ConfigurationError, UserIdError
from openrouter_attribution.pii import detect_personal_data

__all__ = [
    "HASH_KEY_ENV",
    "MAX_ID_LENGTH",
    "UserIdPolicy",
    "detect_personal_data",
    "validate_user_id",
]

MAX_ID_LENGTH = 256
"""OpenRouter's limit for ``user`` and ``session_id``."""
HASH_KEY_ENV = "OPENROUTER_USER_HASH_KEY"
"""Environment variable read by :class:`UserIdPolicy` when ``hash_key`` is not given."""
MAX_PREFIX_LENGTH = 64
MIN_HASH_KEY_BYTES = 16
_CACHE_SIZE = 4096

PiiMode = Literal["reject", "hash", "allow"]

# C0/C1 controls and DEL (category Cc), the bidi controls that make text display in another order than it
# is stored ("Trojan Source", CVE-2021-42574), line/paragraph separators (break log lines) and lone
# surrogates (cannot be encoded as UTF-8 JSON). Other format characters such as the zero-width joiner in
# emoji sequences are allowed.
_FORBIDDEN = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)


def _utf16_length(value: str) -> int:
    # Counted the way JavaScript counts string length (emoji count twice): never more than
    # OpenRouter's limit, whichever way the server counts.
    if len(value) <= MAX_ID_LENGTH // 2 or value.isascii():
        return len(value)
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def validate_user_id(value: object, *, field: str = "user") -> str:
    """Check that ``value`` is an id OpenRouter accepts in ``field`` and return it unchanged.

    Rules, in order (the failing one is ``UserIdError.rule``): ``not_string`` (must be a ``str``),
    ``empty`` (nothing but whitespace), ``too_long`` (more than 256 UTF-16 code units, so characters
    outside the Basic Multilingual Plane count twice), ``control_characters`` (category Cc, bidi
    controls such as U+202E, U+2028/U+2029, lone surrogates). Leading and trailing whitespace is kept
    as given. Messages name the field, the rule and the length or type, never the value itself.

    Args:
        value: The candidate id.
        field: Request field named in error messages, e.g. ``"user"`` or ``"session_id"``.

    Returns:
        ``value``, unchanged.

    Raises:
        UserIdError: When a rule fails.
    """
    if not isinstance(value, str):
        raise UserIdError(
            f"`{field}` must be a str, got {type(value).__name__}; pass your internal id as a string, "
            "e.g. str(account.id).",
            rule="not_string",
        )
    if not value.strip():
        raise UserIdError(
            f"`{field}` is empty or only whitespace; pass a stable non-empty id such as 'app_42'.",
            rule="empty",
        )
    if len(value) > MAX_ID_LENGTH or _utf16_length(value) > MAX_ID_LENGTH:
        raise UserIdError(
            f"`{field}` is {_utf16_length(value)} characters long; "
            f"OpenRouter accepts at most {MAX_ID_LENGTH}. "
            "Use a shorter stable id, or a UserIdPolicy with hash_key=... to send a fixed-length pseudonym.",
            rule="too_long",
        )
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise UserIdError(
            f"`{field}` contains the control character U+{ord(bad.group()):04X} at index {bad.start()}; "
            "remove control, bidi and line-separator characters from the id.",
            rule="control_characters",
        )
    return value


# --- personal-data detection -------------------------------------------------------------------------
# Every pattern is precompiled; digit classes are ASCII so that ids in other scripts do not trip them.
# "Not glued": a candidate must not follow a letter or digit ("user_" is fine, "tel" + digits is not),
# which keeps ids such as "user42", uuids and hex tokens out.
_PII_NAMES = {
    "email": "an e-mail address",
    "payment_card": "a payment card number",
    "ip_address": "an IP address",
    "phone": "a phone number",
}


# --- pseudonymisation ----------------------------------------------------------------------------------
_TOKEN_MARK = "h_"
_TOKEN = re.compile(r"h_[a-z2-7]{32}")
_DIGEST_BYTES = 15  # 120 bits of HMAC-SHA256 identify the user ...
_TAG_BYTES = 5  # ... and a 40-bit keyed tag marks the token as ours, so it is never hashed twice


class _Secret:
    """Key material derived from the hash key. Never shown, never pickled, never compared by value."""

    __slots__ = ("__weakref__", "_id_key", "_tag_key", "fingerprint")

    def __init__(self, key: bytes) -> None:
        self._id_key = hmac.digest(key, b"openrouter-attribution/user-id/v1", "sha256")
        self._tag_key = hmac.digest(key, b"openrouter-attribution/token-tag/v1", "sha256")
        self.fingerprint = hmac.digest(key, b"openrouter-attribution/fingerprint/v1", "sha256")[:16]

    def __repr__(self) -> str:
        return "<secret>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("hash key material cannot be pickled")

    def _tag(self, digest: bytes) -> bytes:
        return hmac.digest(self._tag_key, digest, "sha256")[:_TAG_BYTES]

    def token(self, body: str) -> str:
        digest = hmac.digest(self._id_key, body.encode("utf-8"), "sha256")[:_DIGEST_BYTES]
        return _TOKEN_MARK + base64.b32encode(digest + self._tag(digest)).decode("ascii").lower()

    def made(self, body: str) -> bool:
        if len(body) != 34 or _TOKEN.fullmatch(body) is None:
            return False
        raw = base64.b32decode(body[2:].upper())
        return hmac.compare_digest(raw[_DIGEST_BYTES:], self._tag(raw[:_DIGEST_BYTES]))


# Key material of live policies by fingerprint, so that a pickled policy (which carries only the
# fingerprint) can be restored in the same process; weak, so a key lives no longer than its policies.
_SECRETS: weakref.WeakValueDictionary[bytes, _Secret] = weakref.WeakValueDictionary()


def _load_secret(hash_key: object, source: str) -> _Secret:
    if isinstance(hash_key, str):
        hash_key = hash_key.encode("utf-8")
    if not isinstance(hash_key, bytes):
        raise ConfigurationError(f"{source} must be str or bytes, got {type(hash_key).__name__}.")
    if len(hash_key) < MIN_HASH_KEY_BYTES:
        raise ConfigurationError(
            f"{source} is too short; use at least {MIN_HASH_KEY_BYTES} random bytes, "
            'e.g. python -c "import secrets; print(secrets.token_hex(32))".'
        )
    secret = _Secret(hash_key)
    return _SECRETS.setdefault(secret.fingerprint, secret)


def _check_prefix(prefix: object) -> str:
    if prefix is None:
        return ""
    if not isinstance(prefix, str) or not prefix or len(prefix) > MAX_PREFIX_LENGTH:
        raise ConfigurationError(f"prefix must be a non-empty str of at most {MAX_PREFIX_LENGTH} characters.")
    if not prefix.isprintable() or any(ch.isspace() for ch in prefix):
        raise ConfigurationError("prefix must be printable and contain no whitespace, e.g. 'app_'.")
    return prefix


def _run_transform(hook: Callable[[str], str], raw: str) -> str:
    name = getattr(hook, "__qualname__", type(hook).__name__)
    try:
        value = hook(raw)
    except UserIdError:
        raise
    except Exception as err:
        # The hook's own message may quote the raw id, so only its type is repeated here.
        raise UserIdError(
            f"the transform hook {name} raised {type(err).__name__}; make it return a str for every id.",
            rule="transform_failed",
        ) from err
    try:
        return validate_user_id(value)
    except UserIdError as err:
        raise UserIdError(f"the transform hook {name} returned an invalid id: {err}", rule=err.rule) from err


class UserIdPolicy:
    """How end-user ids are turned into OpenRouter ``user`` values.

    :meth:`apply` runs, in order: :func:`validate_user_id` on the raw id; the ``transform`` hook (its
    result is validated again); personal-data detection (:func:`detect_personal_data`) handled per
    ``pii``; pseudonymisation; the prefix; a final length check.

    Pseudonyms are ``"h_"`` followed by 32 lowercase base32 characters (34 in all): 15 bytes of
    HMAC-SHA256 of the id (without the prefix) under the key, then a 5-byte keyed tag of those bytes.
    The same key and id always give the same pseudonym; without the key it can be neither reversed
    nor confirmed. The tag lets :meth:`apply` recognise its own output: an id that is (prefix +) a
    pseudonym made with this key is returned as is, so ``apply(apply(x)) == apply(x)``. An id that
    already starts with the prefix is not prefixed again (``"app_42"`` and ``"42"`` are the same user);
    with a ``transform`` this idempotence holds only if the hook itself is idempotent.

    Results are memoised per raw id (LRU, 4096 ids), so ``transform`` must be a pure function; failures
    are never cached. The key is never stored in a public attribute, shown by ``repr``, put in a message
    or pickled (a pickle carries a fingerprint and is restored from a live policy with the same key or
    from ``OPENROUTER_USER_HASH_KEY``).

    Example:
        >>> key = "example-key-0123456789"
        >>> policy = UserIdPolicy(prefix="app_", hash_key=key, pii="hash", hash_all=False)
        >>> policy.apply("42"), policy.apply("app_42")
        ('app_42', 'app_42')
        >>> token = policy.apply("ada@example.com")
        >>> token.startswith("app_h_"), len(token), policy.apply(token) == token
        (True, 38, True)
        >>> try:
        ...     UserIdPolicy(pii="reject").apply("ada@example.com")
        ... except UserIdError as err:
        ...     print(err.rule)
        email
    """

    __slots__ = ("_apply_cached", "_hash_all", "_key_from_env", "_pii", "_prefix", "_require_user", "_secret",
                 "_transform")
    _prefix: str
    _pii: PiiMode
    _transform: Callable[[str], str] | None
    _hash_all: bool
    _require_user: bool
    _secret: _Secret | None
    _key_from_env: bool
    _apply_cached: Callable[[str], str]

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
            prefix: Namespace put in front of every id exactly once, e.g. ``"app_"``: printable, no
                whitespace, at most 64 characters.
            hash_key: Secret key for pseudonyms (at least 16 bytes). ``None`` reads the environment
                variable ``OPENROUTER_USER_HASH_KEY`` now, at construction; unset or empty means no key.
            pii: What to do with ids containing personal data: ``"reject"`` raises ``UserIdError``,
                ``"hash"`` sends a pseudonym (needs a key), ``"allow"`` sends them unchanged.
            transform: Pure function mapping a validated raw id to the id to send (e.g. internal account
                to billing id). Its exceptions become ``UserIdError(rule="transform_failed")``, except a
                ``UserIdError`` it raises itself, which propagates unchanged.
            hash_all: ``True`` pseudonymises every id, ``False`` only personal data under ``pii="hash"``;
                ``None`` means ``True`` when a key is configured.
            require_user: Carried for the caller, which raises ``MissingUserError`` when no user is found.

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
            hash_key = os.environ.get(HASH_KEY_ENV) or None
        source = f"the {HASH_KEY_ENV} environment variable" if key_from_env else "hash_key"
        secret = None if hash_key is None else _load_secret(hash_key, source)
        resolved = secret is not None if hash_all is None else hash_all
        if secret is None and (pii == "hash" or resolved):
            raise ConfigurationError(
                "pseudonymising ids needs a key: pass hash_key=... (at least 16 random bytes) or set "
                f"{HASH_KEY_ENV}; or use pii='reject' with hash_all=False."
            )
        self._init(_check_prefix(prefix), pii, transform, resolved, require_user, secret, key_from_env)

    def _init(self, prefix: str, pii: PiiMode, transform: Callable[[str], str] | None, hash_all: bool,
              require_user: bool, secret: _Secret | None, key_from_env: bool) -> None:
        put = object.__setattr__
        put(self, "_prefix", prefix)
        put(self, "_pii", pii)
        put(self, "_transform", transform)
        put(self, "_hash_all", hash_all)
        put(self, "_require_user", require_user)
        put(self, "_secret", secret)
        put(self, "_key_from_env", key_from_env and secret is not None)
        put(self, "_apply_cached", functools.lru_cache(maxsize=_CACHE_SIZE)(self._apply_uncached))

    @property
    def prefix(self) -> str | None:
        """Namespace put in front of every id, or ``None``."""
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
        """Whether every id is pseudonymised (``None`` at construction resolved against the key)."""
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
            raw: Your id for the end-user.

        Returns:
            A non-empty str of at most 256 characters without control characters.

        Raises:
            UserIdError: The id breaks a rule of :func:`validate_user_id`, contains personal data under
                ``pii="reject"`` (rule ``email``, ``phone``, ``ip_address`` or ``payment_card``), the
                ``transform`` hook failed (``transform_failed``) or the prefixed id is too long.
        """
        if not isinstance(raw, str):
            validate_user_id(raw)  # raises not_string; keeps unhashable values away from the cache
        return self._apply_cached(raw)

    def _apply_uncached(self, raw: str) -> str:
        validate_user_id(raw)
        prefix, secret = self._prefix, self._secret
        if secret is not None and (self._hash_all or self._pii == "hash"):
            body = raw[len(prefix):] if raw.startswith(prefix) else raw
            if secret.made(body):  # already a pseudonym of this key: leave it alone
                return prefix + body
        value = raw if self._transform is None else _run_transform(self._transform, raw)
        rule = detect_personal_data(value)
        if rule is not None and self._pii == "reject":
            raise UserIdError(
                f"user id contains {_PII_NAMES[rule]} (rule {rule!r}) and OpenRouter must not "
                "receive personal data. Send an internal account id instead, or pseudonymise it with "
                f"UserIdPolicy(pii='hash', hash_key=...) or {HASH_KEY_ENV}.",
                rule=rule,
            )
        body = value[len(prefix):] if value.startswith(prefix) else value
        if not body.strip():
            raise UserIdError(f"user id is only the prefix {prefix!r}; pass the id after it.", rule="empty")
        if secret is not None and (self._hash_all or (rule is not None and self._pii == "hash")):
            body = secret.token(body)
        result = prefix + body
        if _utf16_length(result) > MAX_ID_LENGTH:
            raise UserIdError(
                f"user id is {_utf16_length(result)} characters long with the prefix {prefix!r}; OpenRouter "
                f"accepts at most {MAX_ID_LENGTH}. Use a shorter id or hash_all=True (pseudonyms are "
                f"{len(prefix) + 34} characters).",
                rule="too_long",
            )
        return result

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
        state = (self._prefix, self._pii, self._transform, self._hash_all, self._require_user, fingerprint,
                 self._key_from_env)
        return (_restore_policy, state)


def _restore_policy(prefix: str, pii: PiiMode, transform: Callable[[str], str] | None, hash_all: bool,
                    require_user: bool, fingerprint: bytes | None, key_from_env: bool) -> UserIdPolicy:
    secret = None if fingerprint is None else _SECRETS.get(fingerprint)
    if fingerprint is not None and secret is None and os.environ.get(HASH_KEY_ENV):
        candidate = _load_secret(os.environ[HASH_KEY_ENV], f"the {HASH_KEY_ENV} environment variable")
        secret = candidate if candidate.fingerprint == fingerprint else None
    if fingerprint is not None and secret is None:
        raise ConfigurationError(
            "cannot unpickle a UserIdPolicy with a hash key: pickles never carry the key. Set "
            f"{HASH_KEY_ENV} to the same key in this process, or build the policy here."
        )
    policy = UserIdPolicy.__new__(UserIdPolicy)
    policy._init(prefix, pii, transform, hash_all, require_user, secret, key_from_env)
    return policy
