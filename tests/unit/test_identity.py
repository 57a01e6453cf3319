"""Examples for openrouter_attribution.identity: validation, policy rules, PII detection, secrets."""

from __future__ import annotations

import base64
import copy
import doctest
import gc
import hmac
import pickle
import re

import pytest

from openrouter_attribution import identity
from openrouter_attribution.errors import ConfigurationError, UserIdError
from openrouter_attribution.identity import (
    HASH_KEY_ENV,
    UserIdPolicy,
    detect_personal_data,
    validate_user_id,
)

KEY = "unit-test-key-0123456789abcdef"
OTHER_KEY = b"another-unit-test-key-fedcba9876543210"
TOKEN = re.compile(r"h_[a-z2-7]{32}")


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)


def expected_token(key: bytes, body: str) -> str:
    """The documented pseudonym format, computed independently of the implementation."""
    id_key = hmac.digest(key, b"openrouter-attribution/user-id/v1", "sha256")
    tag_key = hmac.digest(key, b"openrouter-attribution/token-tag/v1", "sha256")
    digest = hmac.digest(id_key, body.encode(), "sha256")[:15]
    tag = hmac.digest(tag_key, digest, "sha256")[:5]
    return "h_" + base64.b32encode(digest + tag).decode().lower()


# --- validate_user_id ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "user_42",
        "a",
        " spaced id ",
        "x" * 256,
        "\U0001f600" * 128,  # 256 UTF-16 code units
        "ünïcödé_用户",
        "\U0001f469\u200d\U0001f4bb",  # emoji ZWJ sequence: Cf but not a bidi control
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_validate_accepts_and_returns_unchanged(value: str) -> None:
    assert validate_user_id(value) is value


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (42, "not_string"),
        (None, "not_string"),
        (b"user_42", "not_string"),
        (["user_42"], "not_string"),
        ("", "empty"),
        ("   ", "empty"),
        ("\t\n ", "empty"),
        ("x" * 257, "too_long"),
        ("\U0001f600" * 129, "too_long"),  # 129 code points, 258 UTF-16 code units
        ("user\x00_42", "control_characters"),
        ("user_42\x7f", "control_characters"),
        ("user\x85_42", "control_characters"),
        ("user\u202e24_", "control_characters"),
        ("user\u2066_42", "control_characters"),
        ("user\u2028_42", "control_characters"),
        ("user\ud800_42", "control_characters"),
    ],
)
def test_validate_rejects(value: object, rule: str) -> None:
    with pytest.raises(UserIdError) as info:
        validate_user_id(value)
    assert info.value.rule == rule
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", ["secret-user-name\x00", "secret-user-name" * 20, "", 12345678])
def test_validate_message_names_field_never_value(value: object) -> None:
    with pytest.raises(UserIdError) as info:
        validate_user_id(value, field="session_id")
    message = str(info.value)
    assert "`session_id`" in message
    assert "secret-user-name" not in message
    assert "12345678" not in message


def test_too_long_message_gives_length() -> None:
    with pytest.raises(UserIdError, match="300 characters"):
        validate_user_id("y" * 300)


# --- personal-data detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("ada@example.com", "email"),
        ("x ada.l+tag@mail.example.co.uk y", "email"),
        ("ADA@EXAMPLE.ORG", "email"),
        ("+1 555 123 4567", "phone"),
        ("+15551234567", "phone"),
        ("+44 20 7946 0958", "phone"),
        ("tel:+4915112345678", "phone"),
        ("(555) 123-4567", "phone"),
        ("555-123-4567", "phone"),
        ("555.123.4567", "phone"),
        ("020 7946 0958", "phone"),
        ("06 12 34 56 78", "phone"),
        ("0044 20 7946 0958", "phone"),
        ("user_555-123-4567", "phone"),
        ("192.168.1.20", "ip_address"),
        ("user_10.0.0.5", "ip_address"),
        ("2001:db8::1", "ip_address"),
        ("fe80::1", "ip_address"),
        ("[2001:db8::ff00:42:8329]:443", "ip_address"),
        ("::ffff:192.0.2.1", "ip_address"),
        ("4111 1111 1111 1111", "payment_card"),
        ("4111-1111-1111-1111", "payment_card"),
        ("3782 822463 10005", "payment_card"),
        ("5555 5555 5555 4444", "payment_card"),
    ],
)
def test_detects_personal_data(text: str, rule: str) -> None:
    assert detect_personal_data(text) == rule


@pytest.mark.parametrize(
    "text",
    [
        "user_42",
        "app_123",
        "12345",
        "customer_abc123",
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-4234-9234-123456789012",
        "abcdef12-3456-4890-9234-abcdef123456",
        "2024-01-15",
        "2024-01-15-1030",
        "sess-2024-01-15",
        "555-1234",
        "v1.2.3.4",
        "1.2.3.4.5",
        "127.0.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "user::42",
        "org:team:user",
        "a@b",
        "@handle",
        "c++17",
        "user+1",
        "1234 5678 9012 3456",  # no card network starts with 1
        "4111 1111 1111 1112",  # Luhn fails
        # Known false negatives, by design: bare digit runs look exactly like numeric account ids.
        "5551234567",
        "4111111111111111",
        "123456789012345678",
    ],
)
def test_does_not_flag_ordinary_ids(text: str) -> None:
    assert detect_personal_data(text) is None


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("ada.lovelace@example.com", "email"),
        ("+44 20 7946 0958", "phone"),
        ("203.0.113.195", "ip_address"),
        ("4111 1111 1111 1111", "payment_card"),
    ],
)
def test_reject_mode_names_rule_and_remedy_not_value(raw: str, rule: str) -> None:
    with pytest.raises(UserIdError) as info:
        UserIdPolicy(prefix="app_").apply(raw)
    message = str(info.value)
    assert info.value.rule == rule
    assert repr(rule) in message
    assert "internal account id" in message
    assert "pii='hash'" in message
    assert raw not in message
    assert raw.split("@")[0] not in message


def test_allow_mode_passes_personal_data() -> None:
    assert UserIdPolicy(pii="allow", prefix="app_").apply("ada@example.com") == "app_ada@example.com"


def test_hash_mode_pseudonymises_only_personal_data() -> None:
    policy = UserIdPolicy(pii="hash", hash_key=KEY, hash_all=False, prefix="app_")
    assert policy.apply("user_42") == "app_user_42"
    assert policy.apply("ada@example.com") == "app_" + expected_token(KEY.encode(), "ada@example.com")


# --- construction --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefix": ""},
        {"prefix": "a b"},
        {"prefix": "app\x00"},
        {"prefix": "app\u202e"},
        {"prefix": "x" * 65},
        {"prefix": 5},
        {"pii": "maybe"},
        {"transform": "not callable"},
        {"hash_all": "yes"},
        {"require_user": 1},
        {"hash_key": "too-short"},
        {"hash_key": 1234567890123456789},
        {"pii": "hash"},
        {"hash_all": True},
    ],
)
def test_construction_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        UserIdPolicy(**kwargs)  # type: ignore[arg-type]


def test_env_key_is_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HASH_KEY_ENV, KEY)
    policy = UserIdPolicy()
    monkeypatch.delenv(HASH_KEY_ENV)
    assert policy.has_hash_key
    assert policy.hash_all is True
    assert policy.apply("user_42") == expected_token(KEY.encode(), "user_42")
    assert f"<set from ${HASH_KEY_ENV}>" in repr(policy)
    assert not UserIdPolicy().has_hash_key


def test_empty_env_key_means_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HASH_KEY_ENV, "")
    assert not UserIdPolicy().has_hash_key
    with pytest.raises(ConfigurationError, match=HASH_KEY_ENV):
        UserIdPolicy(pii="hash")


def test_short_env_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HASH_KEY_ENV, "short")
    with pytest.raises(ConfigurationError, match=HASH_KEY_ENV) as info:
        UserIdPolicy()
    assert "short" not in str(info.value).replace("too short", "")


def test_properties_and_require_user() -> None:
    def hook(raw: str) -> str:
        return raw

    policy = UserIdPolicy(prefix="app_", pii="allow", transform=hook, require_user=True)
    assert (policy.prefix, policy.pii, policy.transform, policy.hash_all, policy.require_user) == (
        "app_",
        "allow",
        hook,
        False,
        True,
    )
    assert UserIdPolicy().prefix is None


def test_policy_is_immutable() -> None:
    policy = UserIdPolicy(prefix="app_")
    with pytest.raises(AttributeError):
        policy.prefix = "other_"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        policy._prefix = "other_"  # type: ignore[misc]
    assert policy.apply("1") == "app_1"


# --- hashing and prefix --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "raw", "hashed"),
    [
        ({"hash_key": KEY}, "user_42", True),  # hash_all=None + key -> every id
        ({"hash_key": KEY, "hash_all": False}, "user_42", False),
        ({"hash_key": KEY, "hash_all": False, "pii": "hash"}, "user_42", False),
        ({"hash_key": KEY, "hash_all": False, "pii": "hash"}, "ada@example.com", True),
        ({"hash_key": KEY, "hash_all": True, "pii": "allow"}, "ada@example.com", True),
        ({"hash_key": KEY, "pii": "hash"}, "user_42", True),
        ({}, "user_42", False),
    ],
)
def test_when_hashing_applies(kwargs: dict[str, object], raw: str, hashed: bool) -> None:
    out = UserIdPolicy(**kwargs).apply(raw)  # type: ignore[arg-type]
    assert out == (expected_token(KEY.encode(), raw) if hashed else raw)


def test_hash_format_and_determinism() -> None:
    a = UserIdPolicy(prefix="app_", hash_key=KEY)
    b = UserIdPolicy(prefix="app_", hash_key=KEY.encode())
    c = UserIdPolicy(prefix="app_", hash_key=OTHER_KEY)
    out = a.apply("user_42")
    assert re.fullmatch(r"app_h_[a-z2-7]{32}", out)
    assert out == b.apply("user_42") == "app_" + expected_token(KEY.encode(), "user_42")
    assert c.apply("user_42") != out
    assert a.apply("user_43") != out


def test_prefixed_and_unprefixed_ids_are_the_same_user() -> None:
    plain = UserIdPolicy(prefix="app_")
    hashed = UserIdPolicy(prefix="app_", hash_key=KEY)
    assert plain.apply("42") == plain.apply("app_42") == "app_42"
    assert hashed.apply("42") == hashed.apply("app_42")


@pytest.mark.parametrize(
    "policy",
    [
        UserIdPolicy(prefix="app_"),
        UserIdPolicy(prefix="app_", hash_key=KEY),
        UserIdPolicy(hash_key=KEY),
        UserIdPolicy(prefix="app_", hash_key=KEY, pii="hash", hash_all=False),
    ],
    ids=["prefix", "prefix+hash", "hash", "pii-hash"],
)
@pytest.mark.parametrize("raw", ["42", "app_42", "ada@example.com", "h_" + "a" * 32])
def test_apply_is_idempotent(policy: UserIdPolicy, raw: str) -> None:
    try:
        once = policy.apply(raw)
    except UserIdError:
        return
    assert policy.apply(once) == once


def test_foreign_token_is_hashed_again() -> None:
    ours = UserIdPolicy(prefix="app_", hash_key=KEY)
    theirs = UserIdPolicy(prefix="app_", hash_key=OTHER_KEY)
    token = theirs.apply("user_42")
    assert ours.apply(token) != token
    assert TOKEN.fullmatch(ours.apply(token)[4:])


def test_bare_token_gets_prefix_once() -> None:
    bare = UserIdPolicy(hash_key=KEY).apply("user_42")
    assert UserIdPolicy(prefix="app_", hash_key=KEY).apply(bare) == "app_" + bare


def test_id_that_is_only_the_prefix_is_empty() -> None:
    with pytest.raises(UserIdError) as info:
        UserIdPolicy(prefix="app_").apply("app_")
    assert info.value.rule == "empty"


def test_prefix_can_push_id_over_the_limit() -> None:
    policy = UserIdPolicy(prefix="tenant_")
    assert policy.apply("x" * 249) == "tenant_" + "x" * 249
    with pytest.raises(UserIdError, match="hash_all=True") as info:
        policy.apply("x" * 250)
    assert info.value.rule == "too_long"
    assert len(UserIdPolicy(prefix="p" * 64, hash_key=KEY).apply("x" * 256)) == 64 + 34


# --- transform hook ------------------------------------------------------------------------------------


def test_transform_maps_and_is_checked() -> None:
    billing = {"acct-1": "bill_9", "acct-2": "ada@example.com"}
    policy = UserIdPolicy(prefix="app_", transform=billing.__getitem__)
    assert policy.apply("acct-1") == "app_bill_9"
    with pytest.raises(UserIdError) as info:
        policy.apply("acct-2")
    assert info.value.rule == "email"


def test_transform_exception_is_wrapped_without_its_message() -> None:
    policy = UserIdPolicy(transform={"known": "u1"}.__getitem__)
    with pytest.raises(UserIdError) as info:
        policy.apply("secret-account-name")
    assert info.value.rule == "transform_failed"
    assert isinstance(info.value.__cause__, KeyError)
    assert "KeyError" in str(info.value)
    assert "secret-account-name" not in str(info.value)


@pytest.mark.parametrize(("returned", "rule"), [("", "empty"), (7, "not_string"), ("a\x00", "control_characters")])
def test_transform_output_is_validated(returned: object, rule: str) -> None:
    with pytest.raises(UserIdError) as info:
        UserIdPolicy(transform=lambda raw: returned).apply("user_42")  # type: ignore[arg-type,return-value]
    assert info.value.rule == rule
    assert "transform hook" in str(info.value)


def test_user_id_error_from_transform_propagates() -> None:
    def hook(raw: str) -> str:
        raise UserIdError("unknown account", rule="unknown_account")

    with pytest.raises(UserIdError) as info:
        UserIdPolicy(transform=hook).apply("user_42")
    assert info.value.rule == "unknown_account"


def test_results_are_cached_but_failures_are_not() -> None:
    calls: list[str] = []

    def flaky(raw: str) -> str:
        calls.append(raw)
        if len(calls) == 1:
            raise RuntimeError("backend down")
        return "bill_" + raw

    policy = UserIdPolicy(transform=flaky)
    with pytest.raises(UserIdError):
        policy.apply("7")
    assert policy.apply("7") == "bill_7"
    assert policy.apply("7") == "bill_7"
    assert calls == ["7", "7"]


def test_non_string_raw_is_rejected_before_cache() -> None:
    with pytest.raises(UserIdError) as info:
        UserIdPolicy().apply(["unhashable"])  # type: ignore[arg-type]
    assert info.value.rule == "not_string"


# --- secrets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, KEY.encode()])
def test_key_never_shown_copied_or_pickled(key: str | bytes) -> None:
    policy = UserIdPolicy(prefix="app_", hash_key=key, pii="hash")
    key_text = KEY
    assert key_text not in repr(policy)
    assert key_text not in str(policy)
    assert "hash_key=<set>" in repr(policy)
    data = pickle.dumps(policy)
    assert KEY.encode() not in data
    assert KEY.encode().hex().encode() not in data
    assert copy.copy(policy) is policy
    assert copy.deepcopy(policy) is policy
    restored = pickle.loads(data)
    assert restored == policy
    assert restored.apply("ada@example.com") == policy.apply("ada@example.com")
    public = [name for name in dir(policy) if not name.startswith("__")]
    assert not any(key_text in str(getattr(policy, name)) for name in public)


def test_key_material_itself_refuses_pickling() -> None:
    policy = UserIdPolicy(hash_key=KEY)
    with pytest.raises(TypeError):
        pickle.dumps(policy._secret)
    assert repr(policy._secret) == "<secret>"


def test_unpickling_without_the_key_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "only-in-this-test-0123456789"
    data = pickle.dumps(UserIdPolicy(hash_key=key))
    gc.collect()  # the policy is gone; so is its key material
    with pytest.raises(ConfigurationError, match=HASH_KEY_ENV):
        pickle.loads(data)
    monkeypatch.setenv(HASH_KEY_ENV, "a-different-key-0123456789")
    with pytest.raises(ConfigurationError):
        pickle.loads(data)
    monkeypatch.setenv(HASH_KEY_ENV, key)
    assert pickle.loads(data).apply("u1") == expected_token(key.encode(), "u1")


def test_keyless_policy_pickles_plainly() -> None:
    policy = UserIdPolicy(prefix="app_", require_user=True)
    assert pickle.loads(pickle.dumps(policy)) == policy


def test_equality_uses_key_fingerprint() -> None:
    a = UserIdPolicy(prefix="app_", hash_key=KEY)
    assert a == UserIdPolicy(prefix="app_", hash_key=KEY.encode())
    assert hash(a) == hash(UserIdPolicy(prefix="app_", hash_key=KEY))
    assert a != UserIdPolicy(prefix="app_", hash_key=OTHER_KEY)
    assert a != UserIdPolicy(prefix="app_", hash_all=False)
    assert a != "UserIdPolicy"
    assert UserIdPolicy() == UserIdPolicy()


def test_messages_never_contain_the_key() -> None:
    policy = UserIdPolicy(prefix="app_", hash_key=KEY, pii="reject")
    for bad in ("ada@example.com", "", "x" * 300, "a\x00"):
        with pytest.raises(UserIdError) as info:
            policy.apply(bad)
        assert KEY not in str(info.value)


def test_class_docstring_example_runs() -> None:
    result = doctest.testmod(identity, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
