"""Keyed pseudonyms for end-user ids, session ids and metadata values (used by ``UserIdPolicy``).

A pseudonym is ``"h_"`` followed by 32 lowercase base32 characters (34 in all): 15 bytes of
HMAC-SHA256 of the value under a key derived from the hash key for that kind of value, then a 5-byte
keyed tag of those bytes. The tag lets a policy recognise its own output, so applying it twice
changes nothing. Each kind (``user``, ``session``, ``metadata``) has its own derived key, so the
pseudonym of a session id never equals the pseudonym of a user id spelled the same way.
Framework-neutral: only the standard library is used.
"""

from __future__ import annotations

import base64
import hmac
import re
import weakref
from typing import Literal, NoReturn

from openrouter_attribution.errors import ConfigurationError

__all__ = ["MIN_HASH_KEY_BYTES", "TOKEN_LENGTH", "Kind", "Secret", "find_secret", "load_secret"]

MIN_HASH_KEY_BYTES = 16
TOKEN_LENGTH = 34
"""Length of a pseudonym: ``"h_"`` and 32 base32 characters."""

Kind = Literal["user", "session", "metadata"]

_TOKEN_MARK = "h_"
_TOKEN = re.compile(r"h_[a-z2-7]{32}")
_DIGEST_BYTES = 15  # 120 bits of HMAC-SHA256 identify the value ...
_TAG_BYTES = 5  # ... and a 40-bit keyed tag marks the token as ours, so it is never hashed twice
# The user label is the original one: pseudonyms of user ids stay what they were before sessions
# and metadata values were pseudonymised too.
_LABELS: dict[str, bytes] = {
    "user": b"openrouter-attribution/user-id/v1",
    "session": b"openrouter-attribution/session-id/v1",
    "metadata": b"openrouter-attribution/metadata-value/v1",
}


class Secret:
    """Key material derived from the hash key. Never shown, never pickled, never compared by value."""

    __slots__ = ("__weakref__", "_keys", "_tag_key", "fingerprint")

    def __init__(self, key: bytes) -> None:
        self._keys = {kind: hmac.digest(key, label, "sha256") for kind, label in _LABELS.items()}
        self._tag_key = hmac.digest(key, b"openrouter-attribution/token-tag/v1", "sha256")
        self.fingerprint = hmac.digest(key, b"openrouter-attribution/fingerprint/v1", "sha256")[:16]

    def __repr__(self) -> str:
        return "<secret>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("hash key material cannot be pickled")

    def _tag(self, digest: bytes) -> bytes:
        return hmac.digest(self._tag_key, digest, "sha256")[:_TAG_BYTES]

    def token(self, body: str, kind: Kind = "user") -> str:
        """The pseudonym of ``body`` for values of ``kind``."""
        digest = hmac.digest(self._keys[kind], body.encode("utf-8"), "sha256")[:_DIGEST_BYTES]
        return _TOKEN_MARK + base64.b32encode(digest + self._tag(digest)).decode("ascii").lower()

    def made(self, body: str) -> bool:
        """Whether ``body`` is a pseudonym made with this key (of any kind)."""
        if len(body) != TOKEN_LENGTH or _TOKEN.fullmatch(body) is None:
            return False
        raw = base64.b32decode(body[2:].upper())
        return hmac.compare_digest(raw[_DIGEST_BYTES:], self._tag(raw[:_DIGEST_BYTES]))


# Key material of live policies by fingerprint, so that a pickled policy (which carries only the
# fingerprint) can be restored in the same process; weak, so a key lives no longer than its policies.
_SECRETS: weakref.WeakValueDictionary[bytes, Secret] = weakref.WeakValueDictionary()


def load_secret(hash_key: object, source: str) -> Secret:
    """Derive the key material of ``hash_key`` (at least 16 bytes).

    Args:
        hash_key: The key, ``str`` (UTF-8 encoded) or ``bytes``.
        source: How the key was given, for error messages (never the key itself).

    Raises:
        ConfigurationError: The key has the wrong type or is too short.
    """
    if isinstance(hash_key, str):
        hash_key = hash_key.encode("utf-8")
    if not isinstance(hash_key, bytes):
        raise ConfigurationError(f"{source} must be str or bytes, got {type(hash_key).__name__}.")
    if len(hash_key) < MIN_HASH_KEY_BYTES:
        raise ConfigurationError(
            f"{source} is too short; use at least {MIN_HASH_KEY_BYTES} random bytes, "
            'e.g. python -c "import secrets; print(secrets.token_hex(32))".'
        )
    secret = Secret(hash_key)
    return _SECRETS.setdefault(secret.fingerprint, secret)


def find_secret(fingerprint: bytes) -> Secret | None:
    """The key material of a live policy with this fingerprint, if any."""
    return _SECRETS.get(fingerprint)
