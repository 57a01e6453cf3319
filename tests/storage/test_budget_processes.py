"""The budget across processes, on every backend: exactly the calls the budget covers reach the server."""

from __future__ import annotations

import multiprocessing
import threading
from decimal import Decimal

import pytest

from openrouter_attribution import BudgetExceededError, UsageLedger, UserBudget
from openrouter_attribution.langchain import ChatOpenRouter
from tests.storage.workers import budgeted_calls

PROCESSES, CALLS, COVERED = 4, 10, 10
MODEL = "openai/gpt-4o-mini"


def one_call_cost(server, location) -> Decimal:
    """What one call of the race costs: the same question, sent once for a user outside the race."""
    with UsageLedger(location) as ledger:
        model = ChatOpenRouter(model=MODEL, base_url=server.base_url, api_key=server.api_key, ledger=ledger)
        model.invoke("the same question", user="app_probe")
        (rec,) = ledger.records(user="app_probe")
    assert rec.cost is not None
    return rec.cost


@pytest.mark.parametrize("style", ["langchain-async", "llama-index-threads"])
def test_four_processes_take_exactly_the_calls_the_budget_covers(backend, fake_openrouter, style):
    cost = one_call_cost(fake_openrouter, backend.location)
    limit = cost * COVERED
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES + 1), ctx.Queue()
    args = (backend.location, fake_openrouter.base_url, fake_openrouter.api_key, str(limit), str(cost), style, CALLS,
            barrier, results)  # fmt: skip
    procs = [ctx.Process(target=budgeted_calls, args=args) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    others: list[Exception] = []
    with UsageLedger(backend.location) as ledger:
        budget = UserBudget(max_cost=limit, reserve=cost)
        model = ChatOpenRouter(model=MODEL, base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key,
                               max_retries=0, ledger=ledger, budget=budget)  # fmt: skip

        def another_user() -> None:  # calls of another user go through while the race runs
            for _ in range(COVERED):
                try:
                    model.invoke("the same question", user="app_other")
                except Exception as err:  # collected and asserted on below
                    others.append(err)

        barrier.wait(120)
        meanwhile = threading.Thread(target=another_user)
        meanwhile.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        meanwhile.join()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * PROCESSES
        assert (sum(sent for sent, _ in outcomes), sum(refused for _, refused in outcomes)) == (10, 30)
        bodies = [r.body for r in fake_openrouter.chat_requests]
        assert sum(body["user"] == "app_budgeted" for body in bodies) == COVERED  # the refused 30 sent nothing
        assert others == []
        assert sum(body["user"] == "app_other" for body in bodies) == COVERED
        (spent,) = ledger.totals("user", user="app_budgeted")
        assert (spent.requests, spent.cost) == (COVERED, limit)  # the ledger's spend equals the limit
        status = ledger.budget_status("app_budgeted", budget)
        assert (status.usage.in_flight, status.usage.reserved, status.remaining_cost) == (0, Decimal(0), Decimal(0))
        with pytest.raises(BudgetExceededError):
            model.invoke("the same question", user="app_budgeted")
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations WHERE record_id IS NULL") == [(0,)]
