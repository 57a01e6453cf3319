"""Several budgets on one model, on every backend: a call is sent within all of them or not at all."""

from __future__ import annotations

import pytest

from openrouter_attribution import BudgetExceededError, ConfigurationError, UsageLedger, UserBudget
from openrouter_attribution.langchain import ChatOpenRouter

MODEL = "openai/gpt-4o-mini"


def model(server, ledger, budget) -> ChatOpenRouter:
    return ChatOpenRouter(model=MODEL, base_url=server.base_url, api_key=server.api_key, max_retries=0, ledger=ledger,
                          budget=budget)  # fmt: skip


def test_the_budget_that_refuses_is_named_and_the_others_reservations_are_released(backend, fake_openrouter):
    daily, weekly = UserBudget(max_requests=5), UserBudget(max_requests=2, period="week", lease=1)
    with UsageLedger(backend.location) as ledger:
        chat = model(fake_openrouter, ledger, [daily, weekly])
        chat.invoke("Hello", user="app_1")
        chat.invoke("Hello", user="app_1")
        with pytest.raises(BudgetExceededError) as refused:
            chat.invoke("Hello", user="app_1")
        err = refused.value
        assert (err.user, err.scope, err.key, err.period, err.limit) == ("app_1", "user", "app_1", "week", 2)
        assert err.spent + err.reserved == 2  # a record still in the journal counts as a call in flight
        assert len(fake_openrouter.chat_requests) == 2  # the refused call sent nothing
        status = ledger.budget_status("app_1", daily)
        assert (status.usage.requests, status.usage.in_flight) == (2, 0)  # the daily reservation was released
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations WHERE record_id IS NULL") == [(0,)]


def test_budget_takes_a_sequence_of_user_budgets_only(fake_openrouter, tmp_path):
    with UsageLedger(tmp_path / "usage.db") as ledger:
        for wrong in ([], [UserBudget(), "day"], "day"):
            with pytest.raises(ConfigurationError, match="sequence of them"):
                model(fake_openrouter, ledger, wrong).invoke("Hello", user="app_1")
