"""CSV / JSON Lines exports of records, and totals as JSON / CSV."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

from openrouter_attribution.usage import (
    MemoryUsageStore,
    UsageLedger,
    UsageRecord,
    UsageTotals,
    totals_to_json,
    write_totals_csv,
)
from openrouter_attribution.usage.export import RECORD_FIELDS, export_jsonl

RECS = [
    UsageRecord(
        time=1735689600.5,
        user="app_1",
        session_id="s,1",
        model_used="openai/gpt-4o-mini",
        prompt_tokens=12,
        completion_tokens=3,
        cost=Decimal("1.5E-7"),
        streamed=True,
        framework="langchain",
        record_id="r1",
    ),
    UsageRecord(time=1735689700.0, user="app_2", outcome="RateLimitError", record_id="r2"),
    UsageRecord(time=1735689800.0, user="app_1", cost=Decimal("0.25"), record_id="r3"),
]


@pytest.fixture
def ledger():
    with UsageLedger(MemoryUsageStore()) as ledger:
        for rec in RECS:
            ledger.record(rec)
        yield ledger


def test_export_csv_to_a_path(ledger, tmp_path):
    path = tmp_path / "out.csv"
    assert ledger.export_csv(path) == 3
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == RECORD_FIELDS
    assert rows[0]["cost"] == "0.00000015"
    assert rows[0]["session_id"] == "s,1"
    assert rows[0]["streamed"] == "true"
    assert rows[0]["time"] == "2025-01-01T00:00:00.500000Z"  # ISO 8601 UTC, as in JSON Lines
    assert rows[1]["cost"] == ""  # unknown, not 0
    assert rows[1]["outcome"] == "RateLimitError"
    assert [r["record_id"] for r in rows] == ["r1", "r2", "r3"]


def test_export_csv_with_filters_to_a_file_object(ledger):
    buf = io.StringIO()
    assert ledger.export_csv(buf, user="app_1", since=1735689601) == 1
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["record_id"] for r in rows] == ["r3"]


def test_export_jsonl_round_trips(ledger, tmp_path):
    path = tmp_path / "out.jsonl"
    assert ledger.export_jsonl(path) == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [UsageRecord.from_dict(json.loads(line, parse_float=Decimal)) for line in lines] == RECS
    assert '"cost":0.00000015,' in lines[0]  # an exact JSON number, as in `report --format json`
    assert json.loads(lines[0])["cost"] == 0.00000015
    assert json.loads(lines[1])["cost"] is None
    assert json.loads(lines[0])["time"] == "2025-01-01T00:00:00.500000Z"


def test_cost_is_written_with_the_same_digits_in_every_format(ledger):
    csv_buf, jsonl_buf = io.StringIO(), io.StringIO()
    ledger.export_csv(csv_buf)
    ledger.export_jsonl(jsonl_buf)
    csv_costs = [row["cost"] for row in csv.DictReader(io.StringIO(csv_buf.getvalue()))]
    jsonl_costs = [json.loads(line, parse_float=Decimal)["cost"] for line in jsonl_buf.getvalue().splitlines()]
    assert csv_costs == ["0.00000015", "", "0.25"]
    assert [None if c is None else format(c, "f") for c in jsonl_costs] == ["0.00000015", None, "0.25"]
    totals = json.loads(totals_to_json(ledger.totals(None)), parse_float=Decimal)
    assert str(totals[0]["cost"]) == "0.25000015"


def test_export_reports_progress():
    seen = []
    recs = [UsageRecord() for _ in range(25_000)]
    assert export_jsonl(recs, io.StringIO(), progress=seen.append) == 25_000
    assert seen == [10_000, 20_000, 25_000]


def test_totals_to_json_writes_exact_cost_numbers(ledger):
    text = totals_to_json(ledger.totals("user"), "user")
    rows = json.loads(text)
    assert rows == [
        {
            "user": "app_1",
            "requests": 2,
            "errors": 0,
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
            "cost": 0.25000015,
            "unknown_cost_requests": 0,
            "reported_cost": 0.25000015,
            "reconciled": 0,
            "user_mismatches": 0,
        },
        {
            "user": "app_2",
            "requests": 1,
            "errors": 1,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
            "cost": None,
            "unknown_cost_requests": 1,
            "reported_cost": None,
            "reconciled": 0,
            "user_mismatches": 0,
        },
    ]
    assert json.loads(text, parse_float=Decimal)[0]["cost"] == Decimal("0.25000015")
    assert totals_to_json([]) == "[]"


def test_totals_csv():
    buf = io.StringIO()
    write_totals_csv([UsageTotals(key="m", requests=1, cost=Decimal("1E-9")), UsageTotals(key=None)], buf, "model")
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0][:2] == ["model", "requests"]
    assert rows[1][0] == "m"
    assert rows[1][rows[0].index("cost")] == "0.000000001"
    assert rows[2][0] == ""
    assert rows[2][rows[0].index("cost")] == ""
