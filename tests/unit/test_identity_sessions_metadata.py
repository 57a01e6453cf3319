"""The identity policy for session ids and metadata values, the default policy, and ids already sent."""

from __future__ import annotations

import pytest

from openrouter_attribution.errors import UserIdError
from openrouter_attribution.identity import DEFAULT_POLICY, HASH_KEY_ENV, SentId, UserIdPolicy
from openrouter_attribution.pseudonyms import load_secret

KEY = "unit-test-session-key-0123456789"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)


@pytest.mark.parametrize(
    ("policy", "raw", "expected"),
    [
        (DEFAULT_POLICY, "chat-7", "chat-7"),
        (DEFAULT_POLICY, "6f1c1c1e-8f3a-4e9b-9a43-1d2b3c4d5e6f", "6f1c1c1e-8f3a-4e9b-9a43-1d2b3c4d5e6f"),
        (UserIdPolicy(prefix="app_"), "chat-7", "chat-7"),  # the prefix is for user ids only
        (UserIdPolicy(pii="allow"), "ada@example.com", "ada@example.com"),
        (UserIdPolicy(pii="hash", hash_key=KEY, hash_all=False), "chat-7", "chat-7"),
        (UserIdPolicy(pii="hash", hash_key=KEY, hash_all=False), "ada@example.com", "token"),
        (UserIdPolicy(hash_key=KEY), "chat-7", "token"),  # hash_all covers sessions too
    ],
)
def test_session_ids(policy: UserIdPolicy, raw: str, expected: str) -> None:
    sent = policy.apply_session(raw)
    if expected == "token":
        assert sent == load_secret(KEY, "test").token(raw, "session")
        assert sent != load_secret(KEY, "test").token(raw, "user")
        assert policy.apply_session(sent) == sent  # idempotent
    else:
        assert sent == expected


@pytest.mark.parametrize(("raw", "rule"), [("ada@example.com", "email"), ("+44 20 7946 0958", "phone"),
                                           ("203.0.113.195", "ip_address"), ("", "empty"), ("x" * 257, "too_long"),
                                           (42, "not_string")])  # fmt: skip
def test_session_ids_refused_by_default(raw: object, rule: str) -> None:
    with pytest.raises(UserIdError) as info:
        DEFAULT_POLICY.apply_session(raw)  # type: ignore[arg-type]
    assert info.value.rule == rule
    assert "session_id" in str(info.value)
    if isinstance(raw, str) and raw:
        assert raw not in str(info.value)


def test_metadata_values() -> None:
    metadata = {"plan": "pro", "contact": "ada@example.com", "count": 3}
    with pytest.raises(UserIdError) as info:
        DEFAULT_POLICY.apply_metadata(metadata)
    assert info.value.rule == "email"
    assert "openrouter_metadata['contact']" in str(info.value)
    assert "ada@example.com" not in str(info.value)
    assert UserIdPolicy(pii="allow").apply_metadata(metadata) is metadata
    hashed = UserIdPolicy(pii="hash", hash_key=KEY).apply_metadata(metadata)
    assert hashed == {
        "plan": "pro",
        "contact": load_secret(KEY, "test").token("ada@example.com", "metadata"),
        "count": 3,
    }  # fmt: skip  (non-strings are left to the request validation)
    clean = {"plan": "pro", "day": "2024-01-15"}
    assert DEFAULT_POLICY.apply_metadata(clean) is clean  # unchanged: the same object


def test_the_default_policy_never_hashes_even_with_a_key_in_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(HASH_KEY_ENV, KEY)
    assert UserIdPolicy().has_hash_key  # a policy built now reads the key ...
    assert not DEFAULT_POLICY.has_hash_key  # ... the default one never does
    assert DEFAULT_POLICY.apply("42") == "42"
    assert DEFAULT_POLICY.pii == "reject"


def test_sent_ids_are_not_put_through_the_policy_again() -> None:
    calls: list[str] = []

    def hook(raw: str) -> str:
        calls.append(raw)
        return f"billing-{raw}"

    policy = UserIdPolicy(transform=hook)
    sent = policy.apply("7")
    assert policy.apply(SentId(sent)) == sent == "billing-7"
    assert type(policy.apply(SentId(sent))) is str
    assert calls == ["7"]
    assert DEFAULT_POLICY.apply_session(SentId("s-1")) == "s-1"


def test_describe_shows_settings_not_the_key() -> None:
    described = UserIdPolicy(prefix="app_", hash_key=KEY, pii="hash").describe()
    assert described == {"prefix": "app_", "pii": "hash", "hash_all": True, "has_hash_key": True,
                         "transform": None, "require_user": False}  # fmt: skip
    assert KEY not in repr(described)
