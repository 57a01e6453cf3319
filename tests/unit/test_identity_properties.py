"""Property-based tests for openrouter_attribution.identity over arbitrary Unicode input."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from openrouter_attribution.errors import UserIdError
from openrouter_attribution.identity import HASH_KEY_ENV, UserIdPolicy, detect_personal_data

KEY = "property-test-key-0123456789"
PII_RULES = {"email", "phone", "ip_address", "payment_card"}
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PLAIN = UserIdPolicy(prefix="app_", pii="allow", hash_all=False)
REJECTING = UserIdPolicy(prefix="app_", pii="reject", hash_all=False)
HASHING_ALL = UserIdPolicy(prefix="app_", hash_key=KEY, pii="hash", hash_all=True)
HASHING_PII = UserIdPolicy(prefix="app_", hash_key=KEY, pii="hash", hash_all=False)
REJECTING_HASHING = UserIdPolicy(prefix="app_", hash_key=KEY, pii="reject", hash_all=True)
POLICIES = [PLAIN, REJECTING, HASHING_ALL, HASHING_PII, REJECTING_HASHING]

# Any Unicode, mostly short but sometimes around the 256 limit.
ids = st.one_of(st.text(), st.text(min_size=240, max_size=270))


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)


def assert_valid_output(out: object) -> None:
    assert isinstance(out, str)
    assert out.strip()
    assert len(out.encode("utf-16-le")) // 2 <= 256
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in BIDI for ch in out)


@SETTINGS
@given(raw=ids, policy=st.sampled_from(POLICIES))
def test_success_is_always_a_valid_id_and_failures_hide_input(raw: str, policy: UserIdPolicy) -> None:
    try:
        out = policy.apply(raw)
    except UserIdError as err:
        message = str(err)
        if len(raw) >= 6:
            assert raw not in message
        assert KEY not in message
        return
    assert_valid_output(out)
    assert out.startswith("app_")


@SETTINGS
@given(raw=ids, policy=st.sampled_from([PLAIN, REJECTING]))
def test_prefix_is_applied_once(raw: str, policy: UserIdPolicy) -> None:
    try:
        once = policy.apply(raw)
    except UserIdError:
        return
    assert policy.apply(once) == once
    assert not once.startswith("app_app_") or raw.startswith("app_app_")


@SETTINGS
@given(raw=ids, policy=st.sampled_from([HASHING_ALL, HASHING_PII, REJECTING_HASHING]))
def test_hashing_is_idempotent(raw: str, policy: UserIdPolicy) -> None:
    try:
        once = policy.apply(raw)
    except UserIdError:
        return
    assert policy.apply(once) == once


@SETTINGS
@given(raw=ids, key=st.binary(min_size=16, max_size=40), other=st.text(min_size=16, max_size=40))
def test_hashing_is_deterministic_and_keyed(raw: str, key: bytes, other: str) -> None:
    assume(key != other.encode())
    first = UserIdPolicy(hash_key=key, pii="allow")
    try:
        out = first.apply(raw)
    except UserIdError:
        return
    assert UserIdPolicy(hash_key=key, pii="allow").apply(raw) == out
    assert UserIdPolicy(hash_key=other, pii="allow").apply(raw) != out
    assert len(out) == 34
    assert len(raw.strip()) < 8 or raw.strip() not in out


# --- generated personal data embedded in other text ----------------------------------------------------
def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


def _luhn_complete(partial: str) -> str:
    for check in "0123456789":
        number = partial + check
        total = 0
        for i, ch in enumerate(reversed(number)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return number
    raise AssertionError("unreachable")


e164 = st.builds(
    lambda cc, rest, sep: "+" + cc + sep + sep.join(rest[i : i + 3] for i in range(0, len(rest), 3)),
    st.integers(1, 999).map(str),
    st.integers(7, 11).flatmap(_digits),
    st.sampled_from(["", " ", "-", "."]),
)
national = st.one_of(
    st.builds(lambda a, b, c: f"({a}) {b}-{c}", _digits(3), _digits(3), _digits(4)),
    st.builds(lambda a, b, c, s: f"{a}{s}{b}{s}{c}", _digits(3), _digits(3), _digits(4), st.sampled_from("-. ")),
    st.builds(lambda a, b: f"0{a} {b[:4]} {b[4:]}", _digits(2), _digits(8)),
    st.builds(lambda d: "0" + " ".join([d[0], *(d[i : i + 2] for i in range(1, 9, 2))]), _digits(9)),
)
cards = st.builds(
    lambda first, body: " ".join(_luhn_complete(first + body)[i : i + 4] for i in range(0, 16, 4)),
    st.sampled_from("3456"),
    _digits(14),
)
ipv4 = st.ip_addresses(v=4).filter(lambda a: not (a.is_loopback or a.is_unspecified)).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: not (a.is_loopback or a.is_unspecified)).map(str)
emails = st.emails().filter(lambda e: len(e) <= 100)
personal = st.one_of(emails, e164, national, cards, ipv4, ipv6)

# Surrounding text: any printable Unicode (control characters have their own rule), joined to the
# personal data by a delimiter that cannot extend a number.
filler = st.text(
    st.characters(exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp")),
    max_size=20,
)
delimiters = st.sampled_from([" | ", "|", ",", ";", "/", "=", "#"])
embedded = st.builds(
    lambda before, s1, pii, s2, after: (before + s1 + pii + s2 + after, pii),
    filler,
    delimiters,
    personal,
    delimiters,
    filler,
)


@SETTINGS
@given(pii=personal)
def test_generated_personal_data_is_detected(pii: str) -> None:
    assert detect_personal_data(pii) in PII_RULES


@SETTINGS
@given(case=embedded, policy=st.sampled_from([REJECTING, REJECTING_HASHING]))
def test_reject_mode_never_sends_personal_data(case: tuple[str, str], policy: UserIdPolicy) -> None:
    raw, pii = case
    with pytest.raises(UserIdError) as info:
        policy.apply(raw)
    assert info.value.rule in PII_RULES
    assert pii not in str(info.value)


@SETTINGS
@given(case=embedded, policy=st.sampled_from([HASHING_ALL, HASHING_PII]))
def test_hash_mode_never_sends_personal_data(case: tuple[str, str], policy: UserIdPolicy) -> None:
    raw, pii = case
    out = policy.apply(raw)
    assert pii not in out
    assert out.startswith("app_h_")
    assert len(out) == 38
