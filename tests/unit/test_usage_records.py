"""UsageRecord: construction, cost handling and the to_dict / from_dict round trip."""

from __future__ import annotations

import copy
import doctest
import json
import pickle
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrouter_attribution import usage
from openrouter_attribution.usage import export, ledger, records
from openrouter_attribution.usage.commit import leftovers
from openrouter_attribution.usage.records import FIELDS, UsageRecord, UsageTotals, add_costs, parse_cost, sort_totals
from openrouter_attribution.usage.stores import protocol as storage
from openrouter_attribution.usage.stores.sqlite import store as sqlite

texts = st.none() | st.text(max_size=40)
counts = st.none() | st.integers(min_value=0, max_value=10**9)
costs = st.none() | st.decimals(allow_nan=False, allow_infinity=False, min_value=0, max_value=10**6, places=18)
seconds = st.none() | st.floats(min_value=0, max_value=600, allow_nan=False)

usage_records = st.builds(
    UsageRecord,
    time=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    user=texts,
    session_id=texts,
    model_requested=texts,
    model_used=texts,
    provider=texts,
    prompt_tokens=counts,
    completion_tokens=counts,
    cached_tokens=counts,
    reasoning_tokens=counts,
    cost=costs,
    latency_s=seconds,
    ttft_s=seconds,
    generation_id=texts,
    streamed=st.booleans(),
    outcome=st.sampled_from(["ok", "RateLimitError", "abandoned", "APIConnectionError"]),
    framework=st.sampled_from([None, "langchain", "llama_index"]),
    kind=st.sampled_from(["chat", "embeddings"]),
    record_id=st.just("") | st.text(min_size=1, max_size=40),  # a named tuple: builds() fills every field
)


@given(usage_records)
def test_record_round_trips_through_json(rec):
    data = json.loads(json.dumps(rec.to_dict()))
    assert UsageRecord.from_dict(data) == rec


def test_record_defaults_are_unknown_not_zero():
    rec = UsageRecord()
    assert rec.cost is None
    assert rec.prompt_tokens is None
    assert rec.outcome == "ok"
    assert rec.streamed is False
    assert len(rec.record_id) == 32
    assert rec.record_id != UsageRecord().record_id
    assert rec.time > 1_600_000_000


def test_record_is_immutable_and_slotted():
    rec = UsageRecord(user="app_1")
    with pytest.raises(AttributeError):
        rec.user = "app_2"  # type: ignore[misc]
    assert not hasattr(rec, "__dict__")


@given(usage_records)
def test_record_survives_pickle_and_copy(rec):
    for copied in (pickle.loads(pickle.dumps(rec)), copy.copy(rec), copy.deepcopy(rec)):
        assert type(copied) is UsageRecord
        assert copied == rec


def test_replace_checks_its_changes_and_keeps_the_record_id():
    rec = UsageRecord(user="app_1", generation_id="gen-1", cost=Decimal("0.1"))
    changed = rec.replace(cost="0.25", user="app_2")
    assert (changed.cost, changed.user, changed.record_id, rec.user) == (Decimal("0.25"), "app_2", "gen-1", "app_1")
    with pytest.raises(ValueError, match="kind must be one of"):
        rec.replace(kind="images")
    with pytest.raises(ValueError, match="finite"):
        rec.replace(cost=float("nan"))


def test_fields_are_in_declaration_order():
    rec = UsageRecord(user="app_1", record_id="r1")
    assert FIELDS[0] == "time"
    assert FIELDS[-1] == "record_id"
    assert list(rec.to_dict()) == list(FIELDS)
    assert tuple(rec) == tuple(getattr(rec, name) for name in FIELDS)


def test_to_dict_writes_cost_as_plain_decimal_string():
    rec = UsageRecord(cost=Decimal("1.5E-7"))
    assert rec.to_dict()["cost"] == "0.00000015"
    assert UsageRecord().to_dict()["cost"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (Decimal("0.001"), Decimal("0.001")),
        (0.1, Decimal("0.1")),  # the float's shortest repr, not its binary expansion
        (1.953e-05, Decimal("0.00001953")),
        (3, Decimal(3)),
        (" 0.25 ", Decimal("0.25")),
        (0, Decimal(0)),  # a known zero cost stays zero
    ],
)
def test_parse_cost(value, expected):
    assert parse_cost(value) == expected


@pytest.mark.parametrize("value", [True, "abc", float("nan"), float("inf"), Decimal("NaN"), [1]])
def test_parse_cost_rejects(value):
    with pytest.raises(ValueError, match="cost"):
        parse_cost(value)


def test_record_normalises_float_cost_and_rejects_non_finite():
    assert UsageRecord(cost=0.00012).cost == Decimal("0.00012")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        UsageRecord(cost=Decimal("Infinity"))


def test_from_dict_rejects_unknown_fields_and_fills_missing_ones():
    with pytest.raises(ValueError, match="unknown UsageRecord fields"):
        UsageRecord.from_dict({"user": "a", "colour": "blue"})
    rec = UsageRecord.from_dict({"user": "a", "time": "12.5", "cost": "0.1"})
    assert (rec.user, rec.time, rec.cost, rec.outcome) == ("a", 12.5, Decimal("0.1"), "ok")


def test_add_costs_is_exact_beyond_default_decimal_precision():
    big, tiny = Decimal("123456789012345678901234567890"), Decimal("1E-30")
    assert add_costs(big, tiny) == Decimal("123456789012345678901234567890.000000000000000000000000000001")
    assert add_costs(None, tiny) == tiny
    assert add_costs(None, None) is None


def test_sort_totals_orders_by_cost_then_key_with_unknowns_last():
    rows = [
        UsageTotals(key="b", cost=Decimal("1")),
        UsageTotals(key=None, cost=Decimal("5")),
        UsageTotals(key="z", cost=None),
        UsageTotals(key="a", cost=Decimal("1")),
        UsageTotals(key="c", cost=Decimal("1.0000000000000000000000000000001")),
        UsageTotals(key=None, cost=None),
    ]
    assert [(r.key, r.cost) for r in sort_totals(rows)] == [
        (None, Decimal("5")),
        ("c", Decimal("1.0000000000000000000000000000001")),
        ("a", Decimal("1")),
        ("b", Decimal("1")),
        ("z", None),
        (None, None),
    ]


@pytest.mark.parametrize("module", [records, storage, sqlite, export, ledger, leftovers])
def test_docstring_examples_run(module):
    globs = {"Decimal": Decimal, **{name: getattr(usage, name) for name in usage.__all__}}
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
