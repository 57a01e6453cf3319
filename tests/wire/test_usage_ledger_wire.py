"""The usage ledger, fed by real calls to the local server: totals match what the server charged."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal

import pytest

from openrouter_attribution import UsageLedger, errors, user_context
from openrouter_attribution.usage import SQLiteUsageStore, UsageRecord


def _server_costs_by_user(server) -> dict[str, Decimal]:
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for generation in server.generations.values():
        # What the response reported: the billed total_cost plus the cache discount taken off it.
        billed, discount = generation["total_cost"], generation["cache_discount"] or 0
        costs[generation["user"]] += Decimal(str(billed)) + Decimal(str(discount))
    return dict(costs)


def test_totals_equal_the_costs_reported_on_the_wire(fake_openrouter, make_chat, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    model = make_chat(ledger=ledger)
    for i in range(6):
        model.invoke(f"question {i}", user=f"app_{i % 3}", session_id=f"s{i % 2}")
    list(model.stream("streamed question", user="app_0"))
    asyncio.run(model.ainvoke("async question", user="app_1"))
    totals = {row.key: row for row in ledger.totals(by="user")}
    expected = _server_costs_by_user(fake_openrouter)
    assert {key: row.cost for key, row in totals.items()} == expected
    assert {key: row.requests for key, row in totals.items()} == {"app_0": 3, "app_1": 3, "app_2": 2}
    records = list(ledger.records())
    assert {r.generation_id for r in records} == set(fake_openrouter.generations)
    streamed = [r for r in records if r.streamed]
    assert len(streamed) == 1
    assert streamed[0].ttft_s is not None
    assert all(r.framework == "langchain" and r.outcome == "ok" for r in records)
    ledger.close()


def test_failed_and_cut_streams_leave_records(fake_openrouter, make_chat, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    model = make_chat(ledger=ledger)
    with pytest.raises(errors.RateLimitError):
        make_chat(ledger=ledger, default_headers={"X-Fake-Fault": "429"}).invoke("hi", user="app_x")
    with pytest.raises(errors.APIError):
        list(make_chat(ledger=ledger, default_headers={"X-Fake-Fault": "mid-stream-error"}).stream("hi", user="app_y"))
    stream = model.stream("a long answer please", user="app_z")
    next(stream)
    stream.close()  # the consumer stops reading before the final usage chunk
    outcomes = {r.user: r.outcome for r in ledger.records()}
    assert outcomes == {"app_x": "RateLimitError", "app_y": "ProviderUnavailableError", "app_z": "abandoned"}
    ledger.close()


class _FullStore(SQLiteUsageStore):
    """A ledger database that has reached its size limit (SQLITE_FULL on the first write)."""

    def _configure_connection(self, conn: sqlite3.Connection) -> None:
        super()._configure_connection(conn)
        conn.execute("PRAGMA max_page_count = 19")  # the schema itself takes 17 pages


@pytest.mark.parametrize("location", ["corrupt_file", "full_database"])
def test_broken_ledger_location_never_breaks_a_call(fake_openrouter, make_chat, tmp_path, caplog, location):
    caplog.set_level(logging.WARNING, logger="openrouter_attribution.usage")
    if location == "corrupt_file":
        path = tmp_path / "usage.db"
        path.write_bytes(b"not an SQLite file" * 100)
    else:
        path = _FullStore(tmp_path / "full.db")
    ledger = UsageLedger(path)
    if location == "full_database":
        for size in (20, 1):  # fill the database up to its size limit, one write at a time, large then small
            errors = ledger.errors
            for i in range(500):
                ledger.record(UsageRecord(user=f"filler-{size}-{i}", model_used="m/filler" * size))
                ledger.flush(timeout=5)
                if ledger.errors > errors:
                    break
    failures_before = ledger.errors + ledger.dropped
    answer = make_chat(ledger=ledger).invoke("hi", user="app_1")
    assert answer.content
    ledger.flush(timeout=5)
    assert ledger.errors + ledger.dropped > failures_before
    assert ledger.errors >= 1
    assert caplog.records
    ledger.close()


def test_report_on_the_demo_ledger_matches_recorded_requests(tmp_path):
    """Run the demo end to end (it starts its own local server), then compare the report with its requests."""
    db = tmp_path / "demo.db"
    env_python = sys.executable
    demo = subprocess.run(
        [env_python, "-m", "openrouter_attribution.cli", "demo", "--ledger", str(db)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    sent_users = [line.split("user=")[1].split()[0] for line in demo.stdout.splitlines() if "user=" in line]
    report = subprocess.run(
        [env_python, "-m", "openrouter_attribution.cli", "report", "--db", str(db), "--by", "user", "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = {row["user"]: row for row in json.loads(report.stdout)}
    assert {user: rows[user]["requests"] for user in rows} == {u: sent_users.count(u) for u in set(sent_users)}
    assert set(rows) == {"app_alice", "app_bob", "app_carol"}


def test_user_context_calls_are_recorded_under_that_user(fake_openrouter, make_chat, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    with user_context("app_ctx", session_id="conv-1"):
        make_chat(ledger=ledger).invoke("hi")
    (row,) = ledger.totals(by="session")
    assert (row.key, row.requests) == ("conv-1", 1)
    ledger.close()
