"""Totals, top users, time filters: the SQL store and the Python reference agree on known data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openrouter_attribution.usage import (
    MemoryUsageStore,
    SQLiteUsageStore,
    UsageLedger,
    UsageQueryError,
    UsageRecord,
    UsageTotals,
    parse_time,
    queries,
)
from openrouter_attribution.usage.stores.protocol import aggregate_records

T0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
DAY = 86_400.0

KNOWN = [
    UsageRecord(
        time=T0 + 3600,
        user="a",
        session_id="s1",
        model_requested="m1",
        model_used="m1",
        provider="P1",
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=2,
        reasoning_tokens=1,
        cost=Decimal("0.00000123"),
        record_id="r1",
    ),
    UsageRecord(
        time=T0 + 7200,
        user="a",
        session_id="s1",
        model_requested="m1",
        model_used="m1",
        provider="P2",
        prompt_tokens=20,
        completion_tokens=10,
        cached_tokens=0,
        reasoning_tokens=0,
        cost=Decimal("0.1"),
        record_id="r2",
    ),
    UsageRecord(
        time=T0 + DAY + 10,
        user="b",
        session_id="s2",
        model_requested="m2",
        model_used="m2",
        provider="P1",
        prompt_tokens=30,
        completion_tokens=15,
        cost=Decimal("0.2000000001"),
        streamed=True,
        record_id="r3",
    ),
    # A failed call: nothing known but what was asked for.
    UsageRecord(
        time=T0 + DAY + 20,
        user="b",
        session_id="s2",
        model_requested="m2",
        outcome="RateLimitError",
        record_id="r4",
    ),
    # A fallback model, no user, a stream abandoned a millisecond before midnight UTC.
    UsageRecord(
        time=T0 + 2 * DAY - 0.001,
        model_requested="m1",
        model_used="m3",
        provider="P3",
        prompt_tokens=1,
        completion_tokens=1,
        cost=Decimal("1E-18"),
        streamed=True,
        outcome="abandoned",
        record_id="r5",
    ),
]


def row(key, requests, errors, pt, ct, cached, reasoning, cost, unknown=0):
    return UsageTotals(
        key=key,
        requests=requests,
        errors=errors,
        prompt_tokens=pt,
        completion_tokens=ct,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost=None if cost is None else Decimal(cost),
        unknown_cost_requests=unknown,
        reported_cost=None if cost is None else Decimal(cost),  # nothing reconciled: billed is reported
    )


EXPECTED = {
    "user": [
        row("b", 2, 1, 30, 15, 0, 0, "0.2000000001", 1),
        row("a", 2, 0, 30, 15, 2, 1, "0.10000123"),
        row(None, 1, 0, 1, 1, 0, 0, "1E-18"),
    ],
    "model": [
        row("m2", 2, 1, 30, 15, 0, 0, "0.2000000001", 1),
        row("m1", 2, 0, 30, 15, 2, 1, "0.10000123"),
        row("m3", 1, 0, 1, 1, 0, 0, "1E-18"),
    ],
    "day": [
        row("2025-01-02", 3, 1, 31, 16, 0, 0, "0.200000000100000001", 1),
        row("2025-01-01", 2, 0, 30, 15, 2, 1, "0.10000123"),
    ],
    "session": [
        row("s2", 2, 1, 30, 15, 0, 0, "0.2000000001", 1),
        row("s1", 2, 0, 30, 15, 2, 1, "0.10000123"),
        row(None, 1, 0, 1, 1, 0, 0, "1E-18"),
    ],
    "provider": [
        row("P1", 2, 0, 40, 20, 2, 1, "0.2000012301"),
        row("P2", 1, 0, 20, 10, 0, 0, "0.1"),
        row("P3", 1, 0, 1, 1, 0, 0, "1E-18"),
        row(None, 1, 1, 0, 0, 0, 0, None, 1),
    ],
    None: [row(None, 5, 1, 61, 31, 2, 1, "0.300001230100000001", 1)],
}


@pytest.fixture(params=["sqlite", "memory"])
def ledger(request, tmp_path):
    store = tmp_path / "usage.db" if request.param == "sqlite" else MemoryUsageStore()
    with UsageLedger(store, flush_interval=0.05) as ledger:
        for rec in KNOWN:
            ledger.record(rec)
        yield ledger


@pytest.mark.parametrize("by", list(EXPECTED))
def test_totals_by_every_key_are_exact(ledger, by):
    assert ledger.totals(by) == EXPECTED[by]


@pytest.mark.parametrize(
    ("filters", "expected_ids"),
    [
        ({"since": "2025-01-02"}, {"r3", "r4", "r5"}),
        ({"until": date(2025, 1, 2)}, {"r1", "r2"}),
        ({"since": T0 + 7200, "until": T0 + DAY + 20}, {"r2", "r3"}),  # since inclusive, until exclusive
        ({"since": datetime(2025, 1, 1, 1, 30)}, {"r2", "r3", "r4", "r5"}),  # naive datetime means UTC
        ({"until": "2025-01-01T03:00:00+02:00"}, set()),  # 01:00 UTC, when r1 is: until is exclusive
        ({"until": "2025-01-01T03:00:01+02:00"}, {"r1"}),
        ({"since": "2025-01-02T00:00:00Z", "user": "b"}, {"r3", "r4"}),
        ({"user": "a"}, {"r1", "r2"}),
        ({"user": "nobody"}, set()),
    ],
)
def test_filters_select_the_same_records_for_totals_and_records(ledger, filters, expected_ids):
    got = list(ledger.records(**filters))
    assert {r.record_id for r in got} == expected_ids
    assert [r.time for r in got] == sorted(r.time for r in got)
    overall = ledger.totals(None, **filters)[0]
    assert overall.requests == len(expected_ids)
    per_user = ledger.totals("user", **filters)
    assert sum(t.requests for t in per_user) == len(expected_ids)


def test_totals_without_matches(ledger):
    assert ledger.totals("user", user="nobody") == []
    assert ledger.totals(None, user="nobody") == [UsageTotals(key=None)]


def test_top_users(ledger):
    assert [t.key for t in ledger.top_users(2)] == ["b", "a"]
    assert [t.key for t in ledger.top_users()] == ["b", "a", None]
    assert ledger.top_users(0) == []
    assert [t.key for t in ledger.top_users(5, since="2025-01-02")] == ["b", None]


def test_records_round_trip_through_the_store(ledger):
    assert list(ledger.records()) == KNOWN


def test_invalid_queries_raise_usage_query_error(ledger):
    with pytest.raises(UsageQueryError, match="cannot group by"):
        ledger.totals("colour")  # type: ignore[arg-type]
    with pytest.raises(UsageQueryError, match="cannot read 'yesterday'"):
        ledger.totals(since="yesterday")
    with pytest.raises(UsageQueryError, match="n must be"):
        ledger.top_users(-1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1700000000, 1700000000.0),
        (1.5, 1.5),
        ("1700000000.25", 1700000000.25),
        ("2025-01-01", T0),
        (date(2025, 1, 1), T0),
        ("2025-01-01T00:00:00Z", T0),
        ("2025-01-01T01:00:00+01:00", T0),
        ("2025-01-01 00:00:00", T0),
        (datetime(2025, 1, 1), T0),
        (datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), T0),
    ],
)
def test_parse_time(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["", "tomorrow", "2025-13-01", True, float("nan"), "inf", object()])
def test_parse_time_rejects(value):
    with pytest.raises(UsageQueryError):
        parse_time(value)


def test_iter_records_pages_through_large_results(tmp_path):
    store = SQLiteUsageStore(tmp_path / "many.db")
    recs = [UsageRecord(time=T0 + i // 3, user=f"u{i % 7}", record_id=f"{i:06d}") for i in range(2500)]
    store.write_many(recs)
    assert [r.record_id for r in store.iter_records()] == [r.record_id for r in recs]
    assert len(list(store.iter_records(user="u3"))) == len([r for r in recs if r.user == "u3"])
    store.close()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            UsageRecord,
            time=st.floats(min_value=T0 - 3 * DAY, max_value=T0 + 3 * DAY, allow_nan=False),
            user=st.sampled_from([None, "a", "b", "c"]),
            session_id=st.sampled_from([None, "s1", "s2"]),
            model_requested=st.sampled_from([None, "m1", "m2"]),
            model_used=st.sampled_from([None, "m1", "m3"]),
            provider=st.sampled_from([None, "P1", "P2"]),
            prompt_tokens=st.none() | st.integers(0, 10**6),
            completion_tokens=st.none() | st.integers(0, 10**6),
            cached_tokens=st.none() | st.integers(0, 10**6),
            reasoning_tokens=st.none() | st.integers(0, 10**6),
            cost=st.none() | st.decimals(min_value=0, max_value=100, places=20, allow_nan=False),
            outcome=st.sampled_from(["ok", "abandoned", "RateLimitError"]),
            # A record is a named tuple: builds() fills every field, so the rest are pinned here.
            latency_s=st.none(),
            ttft_s=st.none(),
            generation_id=st.none(),
            streamed=st.booleans(),
            framework=st.none(),
            kind=st.sampled_from(["chat", "embeddings"]),
            record_id=st.just(""),
        ),
        max_size=40,
    ),
    st.sampled_from(["user", "model", "day", "session", "provider", None]),
)
def test_sql_aggregation_matches_the_python_reference(recs, by):
    store = SQLiteUsageStore(":memory:")
    try:
        store.write_many(recs)
        expected = aggregate_records(recs, by)
        if by is None and not expected:
            expected = [UsageTotals(key=None)]
        assert queries.totals(store, by) == expected
    finally:
        store.close()
