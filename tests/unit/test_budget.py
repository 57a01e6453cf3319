"""UserBudget: windows in UTC, validation, per-user limits, the error it raises, reserve ceilings."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrouter_attribution import BudgetExceededError, ConfigurationError, OpenRouterError, UserBudget
from openrouter_attribution.pricing import ModelPrice, ceiling, parse_prices, prompt_tokens
from openrouter_attribution.usage.budgets.budget import window
from openrouter_attribution.usage.budgets.keys import key_from_store, store_key


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "now", "start", "reset"),
    [
        ("day", utc(2026, 3, 5, 23, 59, 59), utc(2026, 3, 5), utc(2026, 3, 6)),
        ("day", utc(2026, 3, 6), utc(2026, 3, 6), utc(2026, 3, 7)),
        ("week", utc(2026, 1, 4, 23, 0), utc(2025, 12, 29), utc(2026, 1, 5)),  # Sunday: the week began Monday
        ("week", utc(2026, 1, 5), utc(2026, 1, 5), utc(2026, 1, 12)),  # Monday 00:00 starts a week
        ("month", utc(2026, 2, 28, 12), utc(2026, 2, 1), utc(2026, 3, 1)),
        ("month", utc(2025, 12, 31, 23, 59), utc(2025, 12, 1), utc(2026, 1, 1)),
        ("total", utc(2026, 3, 5), 0.0, None),
    ],
)
def test_windows_are_utc_like_openrouter_key_limits(period, now, start, reset):
    assert window(period, now) == (start, reset)


@given(now=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
       period=st.sampled_from(["day", "week", "month"]))  # fmt: skip
def test_a_window_holds_now_and_starts_on_a_boundary(now, period):
    start, reset = window(period, now)
    assert start <= now < reset
    begin = datetime.fromtimestamp(start, tz=UTC)
    assert (begin.hour, begin.minute, begin.second) == (0, 0, 0)
    if period == "week":
        assert begin.weekday() == 0
    if period == "month":
        assert begin.day == 1
    assert window(period, reset)[0] == reset  # the next window starts where this one ends


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_cost": Decimal("-1")}, "max_cost must be >= 0"),
        ({"max_cost": "five"}, "max_cost must be a Decimal"),
        ({"max_requests": -1}, "max_requests"),
        ({"max_requests": True}, "max_requests"),
        ({"max_requests": 2.5}, "max_requests"),
        ({"period": "hour"}, "period must be one of"),
        ({"reserve": Decimal("-0.1")}, "reserve must be >= 0"),
        ({"unattributed": "ignore"}, "unattributed"),
        ({"reservation_ttl": 0}, "reservation_ttl"),
        ({"limits": {"app_1": 5}}, "limits values must be UserBudget"),
        ({"limits": 42}, "limits must be a mapping"),
        ({"lease": 0}, "lease must be a whole number"),
        ({"lease": 2.5}, "lease must be a whole number"),
        ({"lease": 64, "max_lease": 32}, r"max_lease must be None or a whole number from lease \(64\) to 1000"),
        ({"max_lease": 1001}, "max_lease must be"),
        ({"max_lease": True}, "max_lease must be"),
        ({"scope": "tenant"}, "scope must be 'user' or 'metadata.<key>'"),
        ({"scope": "metadata."}, "scope must be"),
        ({"scope": "metadata.a\x1fb"}, "scope must be"),
        ({"alerts": (0.8,)}, "alerts= needs on_alert="),
        ({"on_alert": print}, "on_alert= needs alerts="),
        ({"alerts": (0, 0.5), "on_alert": print}, "alerts must be fractions"),
        ({"alerts": (1.5,), "on_alert": print}, "alerts must be fractions"),
        ({"alerts": 0.5, "on_alert": print}, "alerts must be fractions"),
    ],
)
def test_bad_budgets_are_refused_at_construction(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        UserBudget(**kwargs)


def test_alerts_are_sorted_fractions_and_scopes_get_keys_no_user_id_has():
    assert UserBudget(alerts=[1, 0.5, 0.5], on_alert=print).alerts == (0.5, 1.0)
    keys = [store_key("user", "app_1"), store_key("user", None), store_key("metadata.tenant", "app_1"),
            store_key("metadata.tenant", None), store_key("metadata.plan", "app_1")]  # fmt: skip
    assert keys == ["app_1", "", "\x1fmetadata.tenant\x1fapp_1", "\x1fmetadata.tenant", "\x1fmetadata.plan\x1fapp_1"]
    assert [key_from_store(key) for key in keys] == [
        ("user", "app_1"), ("user", None), ("metadata.tenant", "app_1"), ("metadata.tenant", None),
        ("metadata.plan", "app_1")]  # fmt: skip


def test_the_largest_lease_defaults_to_the_largest_allowed():
    assert (UserBudget().lease, UserBudget().lease_cap) == (32, 1000)
    assert UserBudget(lease=500).lease_cap == 1000
    assert UserBudget(lease=8, max_lease=8).lease_cap == 8


def test_amounts_become_exact_decimals():
    budget = UserBudget(max_cost="0.30", reserve=0.1)
    assert (budget.max_cost, budget.reserve) == (Decimal("0.30"), Decimal("0.1"))


def test_per_user_limits_from_a_mapping_or_a_callable():
    vip = UserBudget(max_cost=Decimal(50))
    budget = UserBudget(max_cost=Decimal(5), limits={"app_vip": vip})
    assert budget.for_user("app_vip") is vip
    assert budget.for_user("app_1") is budget
    assert budget.for_user(None) is budget  # the shared unattributed budget keeps the defaults
    computed = UserBudget(max_cost=Decimal(5), limits=lambda user: vip if user.startswith("app_v") else None)
    assert computed.for_user("app_vera") is vip
    assert computed.for_user("app_1") is computed
    broken = UserBudget(max_cost=Decimal(5), limits=lambda user: 7)
    with pytest.raises(ConfigurationError, match="not a UserBudget"):
        broken.for_user("app_1")


def test_the_error_carries_the_window_and_survives_pickling():
    resets = datetime(2026, 1, 2, tzinfo=UTC)
    err = BudgetExceededError("over", user="app_1", limit=Decimal(1), spent=Decimal("0.9"), reserved=Decimal("0.05"),
                              requested=Decimal("0.1"), kind="cost", period="day", resets_at=resets)  # fmt: skip
    assert isinstance(err, OpenRouterError)
    assert not isinstance(err, ValueError)  # nothing was wrong with the input
    back = pickle.loads(pickle.dumps(err))
    assert (back.scope, back.key) == ("user", "app_1")  # a user's own budget by default
    tenant = BudgetExceededError("over", user="app_1", limit=1, spent=1, reserved=0, requested=1, kind="requests",
                                 period="day", resets_at=None, scope="metadata.tenant", key="acme")  # fmt: skip
    assert (pickle.loads(pickle.dumps(tenant)).scope, pickle.loads(pickle.dumps(tenant)).key) == (
        "metadata.tenant", "acme")  # fmt: skip
    assert (back.user, back.limit, back.spent, back.reserved, back.kind, back.period, back.resets_at, str(back)) == (
        "app_1",
        Decimal(1),
        Decimal("0.9"),
        Decimal("0.05"),
        "cost",
        "day",
        resets,
        "over",
    )


MODELS = {"data": [
    {"id": "a/cheap", "pricing": {"prompt": "0.000001", "completion": "0.000002", "request": "0"},
     "top_provider": {"max_completion_tokens": 1000}},
    {"id": "a/dear", "pricing": {"prompt": "0.00001", "completion": "0.00003", "request": "0.001"},
     "top_provider": {"max_completion_tokens": None}},
    {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
    {"id": "broken", "pricing": {"prompt": "free"}},
]}  # fmt: skip


def test_prices_keep_only_models_with_known_prices():
    table = parse_prices(MODELS)
    assert set(table) == {"a/cheap", "a/dear"}
    assert table["a/cheap"] == ModelPrice(Decimal("0.000001"), Decimal("0.000002"), Decimal(0), 1000)


def test_the_ceiling_prices_the_prompt_generously_and_the_completion_at_its_cap():
    table = parse_prices(MODELS)
    body = {"model": "a/cheap", "messages": [{"role": "user", "content": "x" * 30}]}
    assert prompt_tokens(body) == 4 + 10
    assert ceiling(table, body) == Decimal("0.000001") * 14 + Decimal("0.000002") * 1000
    assert ceiling(table, {**body, "max_tokens": 10}) == Decimal("0.000001") * 14 + Decimal("0.000002") * 10
    # Fallback models: the costliest candidate; its completion cap is unknown, so 4,096 tokens.
    dear = Decimal("0.00001") * 14 + Decimal("0.00003") * 4096 + Decimal("0.001")
    assert ceiling(table, {**body, "models": ["a/dear"]}) == dear
    assert ceiling(table, {**body, "model": "openrouter/auto"}) is None  # variable price: no ceiling
    assert ceiling(table, {"model": "a/cheap", "input": ["abc", "defgh"]}) == Decimal("0.000001") * 3  # embeddings


def test_non_text_parts_and_tools_count_toward_the_prompt():
    body = {"model": "a/cheap", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "abc"}, {"type": "image_url", "image_url": {"url": "data:..."}}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}]}  # fmt: skip
    assert prompt_tokens(body) > 4 + 1 + 1000


@pytest.mark.parametrize("name", ["alerts", "keys", "webhook", "windows"])
def test_the_budget_modules_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"openrouter_attribution.usage.budgets.{name}"))
    assert result.attempted > 0
    assert result.failed == 0
