"""Budget alerts on every backend: once per window in the whole fleet, never on the calling thread."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from decimal import Decimal

from openrouter_attribution import UsageLedger, UserBudget
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.usage import BudgetAlert, alerts_fired, budget_windows
from openrouter_attribution.usage.budgets.alerts import wait_for_alerts
from tests.storage.workers import alerted_calls

MODEL = "openai/gpt-4o-mini"
PROCESSES, CALLS, LIMIT = 20, 2, 40


def model(server, ledger, budget) -> ChatOpenRouter:
    return ChatOpenRouter(model=MODEL, base_url=server.base_url, api_key=server.api_key, max_retries=0, ledger=ledger,
                          budget=budget)  # fmt: skip


def test_twenty_processes_crossing_80_percent_fire_the_alert_once(backend, fake_openrouter, tmp_path):
    alerts_file = tmp_path / "alerts.txt"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    args = (backend.location, fake_openrouter.base_url, fake_openrouter.api_key, CALLS, LIMIT, str(alerts_file),
            barrier)  # fmt: skip
    procs = [ctx.Process(target=alerted_calls, args=args) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    lines = alerts_file.read_text().splitlines()
    assert len(lines) == 1, lines
    _, key, kind, fraction, spent = lines[0].split()
    assert (key, kind, float(fraction)) == ("app_alerted", "requests", 0.8)
    assert 32 <= int(spent) <= PROCESSES * CALLS
    assert sum(r.body["user"] == "app_alerted" for r in fake_openrouter.chat_requests) == PROCESSES * CALLS
    with UsageLedger(backend.location) as ledger:
        (fired,) = alerts_fired(ledger)
        assert (fired.scope, fired.key, fired.kind, fired.fraction, fired.limit) == (
            "user", "app_alerted", "requests", 0.8, LIMIT)  # fmt: skip
        assert fired.spent == int(spent)
        assert fired.resets_at is not None
        assert alerts_fired(ledger, since=fired.fired_at.timestamp() + 1) == []


def test_a_blocking_or_raising_on_alert_neither_delays_nor_fails_the_call(backend, fake_openrouter, caplog):
    returned = threading.Event()
    arrived: list[tuple[BudgetAlert, bool]] = []

    def slow(alert: BudgetAlert) -> None:
        time.sleep(5)
        arrived.append((alert, returned.is_set()))  # set once the call that crossed returned

    def failing(alert: BudgetAlert) -> None:
        raise RuntimeError("secret-ish detail")

    cost = UserBudget(max_cost=Decimal("1"), reserve=Decimal("0.001"), alerts=(0.5,), on_alert=failing)
    with UsageLedger(backend.location) as ledger:
        slow_model = model(fake_openrouter, ledger, UserBudget(max_requests=2, alerts=(0.5, 1.0), on_alert=slow))
        failing_model = model(fake_openrouter, ledger, UserBudget(max_requests=1, alerts=(1.0,), on_alert=failing))
        cost_model = model(fake_openrouter, ledger, cost)
        with caplog.at_level(logging.WARNING, logger="openrouter_attribution.usage"):
            slow_model.invoke("Hello", user="app_slow")
            slow_model.invoke("Hello", user="app_slow")
            returned.set()
            failing_model.invoke("Hello", user="app_failing")
            failing_model.invoke("Hello", user="app_failing_too")
            cost_model.invoke("Hello", user="app_cheap")  # far below 50%: no alert
            assert wait_for_alerts(60)
        assert [(a.key, a.fraction, a.limit, seen) for a, seen in arrived] == [
            ("app_slow", 0.5, 2, True), ("app_slow", 1.0, 2, True)]  # fmt: skip
        # `spent` is the window's use when the alert was claimed: the 50% alert's check may run after the
        # second call's record is stored already (the alerts thread races the calls), so 1 or 2.
        assert arrived[0][0].spent in (1, 2)
        assert arrived[1][0].spent == 2
        warnings = [r.getMessage() for r in caplog.records if "on_alert" in r.getMessage()]
        assert warnings == ["budget: on_alert raised RuntimeError; further failures of this budget are not logged"]
        assert sorted((a.key, a.fraction) for a in alerts_fired(ledger)) == [
            ("app_failing", 1.0), ("app_failing_too", 1.0), ("app_slow", 0.5), ("app_slow", 1.0)]  # fmt: skip


def test_budget_windows_put_every_key_beside_its_limits(backend, fake_openrouter):
    budget = UserBudget(max_requests=4, limits={"app_vip": UserBudget(max_requests=40)})
    with UsageLedger(backend.location) as ledger:
        chat = model(fake_openrouter, ledger, budget)
        for user in ("app_a", "app_a", "app_a", "app_vip", "app_b"):
            chat.invoke("Hello", user=user)
        windows = budget_windows(ledger, budget)
    assert [(w.key, w.requests, w.max_requests, w.used) for w in windows] == [
        ("app_a", 3, 4, 0.75), ("app_b", 1, 4, 0.25), ("app_vip", 1, 40, 0.025)]  # fmt: skip
    assert all(w.spent > 0 and w.resets_at is not None for w in windows)
