"""The rules every id gets: OpenRouter's limits, personal-data errors, prefixes and transform hooks.

Used by :class:`~openrouter_attribution.identity.UserIdPolicy` and the request builder; the public
names are re-exported by :mod:`openrouter_attribution.identity`. Framework-neutral and free of I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from openrouter_attribution import environment
from openrouter_attribution.errors import ConfigurationError, UserIdError

__all__ = [
    "HASH_KEY_ENV",
    "MAX_ID_LENGTH",
    "MAX_PREFIX_LENGTH",
    "check_prefix",
    "personal_data_error",
    "run_transform",
    "utf16_length",
    "validate_user_id",
]

MAX_ID_LENGTH = 256
"""OpenRouter's limit for ``user`` and ``session_id``."""
HASH_KEY_ENV = environment.HASH_KEY_ENV
"""Environment variable read by :class:`UserIdPolicy` when ``hash_key`` is not given."""
MAX_PREFIX_LENGTH = 64

# C0/C1 controls and DEL (category Cc), the bidi controls that make text display in another order than it
# is stored ("Trojan Source", CVE-2021-42574), line/paragraph separators (break log lines) and lone
# surrogates (cannot be encoded as UTF-8 JSON). Other format characters such as the zero-width joiner in
# emoji sequences are allowed.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")


def utf16_length(value: str) -> int:
    """Length in UTF-16 code units, the way JavaScript counts it (emoji count twice).

    Never more than OpenRouter's limit, whichever way the server counts.
    """
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
    if len(value) > MAX_ID_LENGTH or utf16_length(value) > MAX_ID_LENGTH:
        raise UserIdError(
            f"`{field}` is {utf16_length(value)} characters long; "
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
_PII_NAMES = {
    "email": "an e-mail address",
    "payment_card": "a payment card number",
    "ip_address": "an IP address",
    "phone": "a phone number",
}


def personal_data_error(field: str, rule: str) -> UserIdError:
    """The error for personal data found in ``field``: names the rule and the ways out, never the value.

    Args:
        field: What held the data, e.g. ``"`user`"`` or ``"`openrouter_metadata['email']`"``.
        rule: The rule of :func:`detect_personal_data` that matched.
    """
    return UserIdError(
        f"{field} contains {_PII_NAMES[rule]} (rule {rule!r}) and OpenRouter must not receive personal "
        "data. Send an internal account id instead; or pseudonymise it with "
        f"user_policy=UserIdPolicy(pii='hash', hash_key=...) (or set {HASH_KEY_ENV}); or send it "
        "unchanged, deliberately, with user_policy=UserIdPolicy(pii='allow').",
        rule=rule,
    )


def check_prefix(prefix: object) -> str:
    """Validate a policy prefix (``None`` means none) and return it as a str."""
    if prefix is None:
        return ""
    if not isinstance(prefix, str) or not prefix or len(prefix) > MAX_PREFIX_LENGTH:
        raise ConfigurationError(f"prefix must be a non-empty str of at most {MAX_PREFIX_LENGTH} characters.")
    if not prefix.isprintable() or any(ch.isspace() for ch in prefix):
        raise ConfigurationError("prefix must be printable and contain no whitespace, e.g. 'app_'.")
    return prefix


def run_transform(hook: Callable[[str], str], raw: str) -> str:
    """Run a policy's transform hook; its failures become ``UserIdError`` without the raw id."""
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
