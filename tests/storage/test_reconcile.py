"""Reconciliation with the local server's GET /generation, on every backend, through the API and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from openrouter_attribution import AuthenticationError, ConfigurationError, UsageLedger, UsageRecord
from openrouter_attribution.cli import main
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.usage.reconcile import reconcile
from openrouter_attribution.usage.stores.protocol import MemoryUsageStore

ROOT = Path(__file__).resolve().parents[2]
MODEL = "openai/gpt-4o-mini"
SYSTEM = ("system", "You answer in one sentence.")  # a shared prefix: the second call of a user hits the cache


def make_calls(server, location, calls=(("app_a", 3), ("app_b", 2)), stream_user="app_b") -> None:
    with UsageLedger(location) as ledger:
        model = ChatOpenRouter(model=MODEL, base_url=server.base_url, api_key=server.api_key, ledger=ledger)
        for user, n in calls:
            for i in range(n):
                model.invoke([SYSTEM, ("human", f"question {i}")], user=user)
        for _ in model.stream([SYSTEM, ("human", "stream it")], user=stream_user):
            pass


def billed_by_user(server) -> dict[str, Decimal]:
    billed: dict[str, Decimal] = defaultdict(Decimal)
    for generation in server.generations.values():
        billed[generation["external_user"]] += Decimal(str(generation["total_cost"]))
    return dict(billed)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_shows_billed_cost_beside_the_reported_one(backend, fake_openrouter, capsys, monkeypatch):
    make_calls(fake_openrouter, backend.location)
    code, out, _ = run_cli(capsys, "report", "--db", backend.location, "--format", "json")
    before = {row["user"]: row for row in json.loads(out, parse_float=Decimal)}
    assert all(row["reconciled"] == 0 and row["cost"] == row["reported_cost"] for row in before.values())
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    code, out, err = run_cli(capsys, "reconcile", "--db", backend.location, "--base-url", fake_openrouter.base_url)
    assert (code, err) == (0, "")  # no progress bar: stderr is not a terminal
    assert out.startswith("checked 6, updated 6, not found 0, user mismatches 0, total drift -")
    code, out, _ = run_cli(capsys, "report", "--db", backend.location, "--format", "json")
    rows = {row["user"]: row for row in json.loads(out, parse_float=Decimal)}
    billed = billed_by_user(fake_openrouter)
    assert {user: row["cost"] for user, row in rows.items()} == billed
    assert {user: row["reported_cost"] for user, row in rows.items()} == {u: r["cost"] for u, r in before.items()}
    assert all(row["cost"] < row["reported_cost"] for row in rows.values())  # the cache discount
    assert {user: (row["reconciled"], row["user_mismatches"]) for user, row in rows.items()} == {
        "app_a": (3, 0),
        "app_b": (3, 0),
    }
    for fmt in ("csv", "table"):
        code, out, _ = run_cli(capsys, "report", "--db", backend.location, "--format", fmt)
        assert "reconciled" in out.splitlines()[0]
        assert str(billed["app_a"]) in out
    with UsageLedger(backend.location) as ledger:
        (a,) = ledger.totals("user", user="app_a")
        assert (a.cost, a.reconciled) == (billed["app_a"], 3)
    native = backend.rows("SELECT native_prompt_tokens, native_cached_tokens, cancelled, billed_user "
                          "FROM usage_records WHERE user_mismatch IS NOT NULL ORDER BY time")  # fmt: skip
    assert len(native) == 6
    assert all(row[0] and row[3] in ("app_a", "app_b") and not row[2] for row in native)
    assert any(row[1] for row in native)  # cached prompt tokens, as the server counted them


def test_an_unknown_generation_is_not_found_never_zero(backend, fake_openrouter):
    make_calls(fake_openrouter, backend.location, calls=(("app_a", 2),), stream_user="app_a")
    forgotten = next(iter(fake_openrouter.generations))
    assert fake_openrouter.forget_generation(forgotten)
    with UsageLedger(backend.location) as ledger:
        summary = ledger.reconcile(api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url, recent=0)
        assert (summary.checked, summary.updated, summary.not_found) == (3, 2, 1)
        (row,) = ledger.totals("user")
        reported = {r.generation_id: r.cost for r in ledger.records()}
        billed = billed_by_user(fake_openrouter)["app_a"]
        assert row.cost == billed + reported[forgotten]  # the unknown one keeps its reported cost
        assert (row.reconciled, row.unknown_cost_requests) == (2, 0)
        again = ledger.reconcile(api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url, recent=0)
        assert (again.pending, again.checked) == (0, 0)  # not asked again unless retry_not_found
    assert backend.rows(f"SELECT reconcile_status, billed_cost FROM usage_records WHERE record_id = '{forgotten}'") == [
        ("not_found", None)
    ]


def test_a_recent_404_is_retried_until_the_stats_appear(backend, fake_openrouter):
    fake_openrouter.generation_delay = 1.0  # stats appear a second after each generation
    make_calls(fake_openrouter, backend.location, calls=(("app_a", 1),), stream_user="app_a")
    with UsageLedger(backend.location) as ledger:
        summary = ledger.reconcile(api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url, retry_for=10)
        assert (summary.updated, summary.not_found, summary.not_yet) == (2, 0, 0)
    lookups = [r for r in fake_openrouter.requests if r.path.endswith("/generation")]
    assert len(lookups) > 2  # some were answered 404 first


def test_a_recent_generation_still_missing_is_left_for_the_next_run(backend, fake_openrouter):
    fake_openrouter.generation_delay = 3600.0
    make_calls(fake_openrouter, backend.location, calls=(("app_a", 1),), stream_user="app_a")
    with UsageLedger(backend.location) as ledger:
        summary = ledger.reconcile(api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url, retry_for=0.3)
        assert (summary.updated, summary.not_found, summary.not_yet) == (0, 0, 2)
        assert "left for the next run: 2 not available yet" in summary.describe()
        # An hour later the stats are there.
        later = ledger.reconcile(
            api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url, clock=lambda: time.time() + 3600
        )
        assert (later.pending, later.not_found) == (2, 2)  # older than `recent` now: not found, never 0


def test_a_user_mismatch_is_flagged(backend, fake_openrouter):
    make_calls(fake_openrouter, backend.location, calls=(("app_a", 1),), stream_user="app_a")
    with UsageLedger(backend.location) as ledger:
        gid = next(iter(fake_openrouter.generations))
        ledger.record(UsageRecord(user="app_z", generation_id=gid, record_id="copied", cost=Decimal("0.001")))
        summary = ledger.reconcile(api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url)
        assert (summary.updated, summary.user_mismatches) == (3, 1)
        mismatched = {t.key: t.user_mismatches for t in ledger.totals("user")}
        assert mismatched == {"app_a": 0, "app_z": 1}


def test_a_wrong_key_fails_cleanly_and_is_never_shown(backend, fake_openrouter, capsys, monkeypatch):
    make_calls(fake_openrouter, backend.location, calls=(("app_a", 1),), stream_user="app_a")
    secret = "sk-or-v1-wrong-0123456789abcdef"
    monkeypatch.setenv("OPENROUTER_API_KEY", secret)
    code, out, err = run_cli(capsys, "reconcile", "--db", backend.location, "--base-url", fake_openrouter.base_url)
    assert code == 2
    assert "401" in err
    assert secret not in out + err
    monkeypatch.delenv("OPENROUTER_API_KEY")
    before = len(fake_openrouter.requests)
    code, out, err = run_cli(capsys, "reconcile", "--db", backend.location, "--base-url", fake_openrouter.base_url)
    assert code == 2
    assert "OPENROUTER_API_KEY" in err
    assert len(fake_openrouter.requests) == before  # refused before any lookup
    with UsageLedger(backend.location) as ledger, pytest.raises(AuthenticationError):
        ledger.reconcile(api_key=secret, base_url=fake_openrouter.base_url)
    assert not backend.rows("SELECT 1 FROM usage_records WHERE reconcile_status IS NOT NULL")


def test_settings_that_cannot_work_are_refused_before_any_lookup(backend, fake_openrouter, capsys, monkeypatch):
    make_calls(fake_openrouter, backend.location, calls=(("app_a", 1),), stream_user="app_a")
    before = len(fake_openrouter.requests)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with UsageLedger(backend.location) as ledger:
        with pytest.raises(ConfigurationError, match="No OpenRouter API key"):
            ledger.reconcile(base_url=fake_openrouter.base_url)
        with pytest.raises(ConfigurationError, match="concurrency must be >= 1, got 0"):
            ledger.reconcile(api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url, concurrency=0)
    with pytest.raises(ConfigurationError, match="MemoryUsageStore cannot hold billed costs"):
        reconcile(MemoryUsageStore(), api_key=fake_openrouter.api_key, base_url=fake_openrouter.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    with pytest.raises(SystemExit) as exited:
        run_cli(
            capsys, "reconcile", "--db", backend.location, "--base-url", fake_openrouter.base_url, "--concurrency", "0"
        )
    assert exited.value.code == 2
    assert "--concurrency: must be >= 1, got 0" in capsys.readouterr().err
    assert len(fake_openrouter.requests) == before
    assert _reconciled(backend) == 0


def _reconciled(backend) -> int:
    return backend.rows("SELECT COUNT(*) FROM usage_records WHERE reconcile_status IS NOT NULL")[0][0]


def test_an_interrupted_run_resumes_where_it_stopped(backend, fake_openrouter):
    make_calls(fake_openrouter, backend.location, calls=(("app_a", 12), ("app_b", 11)), stream_user="app_a")
    fake_openrouter.generation_latency = 0.15
    env = {**os.environ, "OPENROUTER_API_KEY": fake_openrouter.api_key}
    command = [sys.executable, "-m", "openrouter_attribution.cli", "reconcile", "--db", backend.location,
               "--base-url", fake_openrouter.base_url, "--concurrency", "2"]  # fmt: skip
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _reconciled(backend) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    done = _reconciled(backend)
    assert 0 < done < 24  # stopped part-way, with what it had fetched stored
    fake_openrouter.generation_latency = 0.0
    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"checked {24 - done}, updated {24 - done}, not found 0")
    assert _reconciled(backend) == 24
    lookups = defaultdict(int)
    for request in fake_openrouter.requests:
        if request.path.endswith("/generation"):
            lookups[request.query["id"]] += 1
    assert len(lookups) == 24
    assert max(lookups.values()) <= 2  # only lookups in flight at the interruption were asked again
    assert "run the command again to resume" in err
    assert fake_openrouter.api_key not in out + err + second.stdout + second.stderr


def test_a_progress_bar_on_a_terminal_only(backend, fake_openrouter):
    import pty

    make_calls(fake_openrouter, backend.location, calls=(("app_a", 2),), stream_user="app_a")
    env = {**os.environ, "OPENROUTER_API_KEY": fake_openrouter.api_key}
    command = [sys.executable, "-m", "openrouter_attribution.cli", "reconcile", "--db", backend.location,
               "--base-url", fake_openrouter.base_url]  # fmt: skip
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120
        )
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 0
    assert b"reconcile [" in shown
    assert b"3/3" in shown
    assert fake_openrouter.api_key.encode() not in shown
    assert done.stdout.startswith("checked 3, updated 3")
