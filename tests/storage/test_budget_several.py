"""Several budgets on one model, on every backend: a call is sent within all of them or not at all."""

from __future__ import annotations

import multiprocessing
from decimal import Decimal

import pytest

from openrouter_attribution import (
    BudgetExceededError,
    ConfigurationError,
    MissingUserError,
    UsageLedger,
    UserBudget,
    user_context,
)
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.usage import UsageRecord, budget_windows
from tests.storage.workers import tenant_calls

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


TENANT_PROCESSES, TENANT_CALLS, TENANT_LIMIT = 4, 6, 10


def test_a_tenant_budget_shared_by_three_users_in_four_processes_lets_exactly_its_calls_out(backend, fake_openrouter):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(TENANT_PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=tenant_calls, args=(backend.location, fake_openrouter.base_url, fake_openrouter.api_key,
                                                    proc, TENANT_CALLS, TENANT_LIMIT, barrier, results))
             for proc in range(TENANT_PROCESSES)]  # fmt: skip
    for p in procs:
        p.start()
    outcomes = [outcome for _ in procs for outcome in results.get(timeout=300)]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * TENANT_PROCESSES
    refused = TENANT_PROCESSES * TENANT_CALLS - TENANT_LIMIT
    assert sorted(set(outcomes)) == ["refused by metadata.tenant acme", "sent"]
    assert (outcomes.count("sent"), len(outcomes) - outcomes.count("sent")) == (TENANT_LIMIT, refused)
    sent = [r.body for r in fake_openrouter.chat_requests if (r.body.get("metadata") or {}).get("tenant") == "acme"]
    assert len(sent) == TENANT_LIMIT  # counted on the server: the refused calls sent nothing
    assert len({body["user"] for body in sent}) > 1  # the users of the tenant shared it
    budget = UserBudget(scope="metadata.tenant", max_requests=TENANT_LIMIT)
    with UsageLedger(backend.location) as ledger:
        status = ledger.budget_status("acme", budget)
        assert (status.usage.requests, status.usage.in_flight, status.remaining_requests) == (TENANT_LIMIT, 0, 0)
        (window,) = budget_windows(ledger, budget)
        assert (window.key, window.requests, window.used) == ("acme", TENANT_LIMIT, 1.0)


def test_a_user_within_the_tenant_budget_but_over_their_own_is_refused_by_their_own(backend, fake_openrouter):
    own, tenant = UserBudget(max_requests=1), UserBudget(scope="metadata.tenant", max_requests=5, lease=1)
    with UsageLedger(backend.location) as ledger:
        chat = model(fake_openrouter, ledger, [tenant, own])
        with user_context(user="app_1", metadata={"tenant": "acme"}):
            chat.invoke("Hello")
            with pytest.raises(BudgetExceededError) as refused:
                chat.invoke("Hello")
        err = refused.value
        assert (err.scope, err.key, err.user, err.kind, err.limit) == ("user", "app_1", "app_1", "requests", 1)
        # The tenant's reservation of the refused call was released: only the first call counts.
        usage = ledger.budget_status("acme", tenant).usage
        assert (usage.requests, usage.in_flight) == (1, 0)
        with user_context(user="app_2", metadata={"tenant": "acme"}):
            chat.invoke("Hello")  # another user of the tenant goes through
        # A user named like the tenant has a budget of their own: the keys never collide.
        with user_context(user="acme", metadata={"tenant": "other"}):
            chat.invoke("Hello")
        assert ledger.budget_status("acme", own).usage.requests == 1
        assert ledger.budget_status("acme", tenant).usage.requests == 2
    assert len(fake_openrouter.chat_requests) == 3


def test_a_call_without_the_metadata_key_follows_unattributed(backend, fake_openrouter):
    with UsageLedger(backend.location) as ledger:
        refusing = model(fake_openrouter, ledger, UserBudget(scope="metadata.tenant", max_requests=5,
                                                             unattributed="refuse"))  # fmt: skip
        with pytest.raises(MissingUserError, match="'tenant'"):
            refusing.invoke("Hello", user="app_1")
        shared = model(fake_openrouter, ledger, UserBudget(scope="metadata.tenant", max_requests=1, lease=1))
        shared.invoke("Hello", user="app_1")
        with pytest.raises(BudgetExceededError) as refused:
            shared.invoke("Hello", user="app_2")  # both lack a tenant: they share one budget
        assert (refused.value.scope, refused.value.key, refused.value.user) == ("metadata.tenant", None, "app_2")
        allowing = model(fake_openrouter, ledger, UserBudget(scope="metadata.tenant", max_requests=0,
                                                             unattributed="allow"))  # fmt: skip
        allowing.invoke("Hello", user="app_3")
    assert len(fake_openrouter.chat_requests) == 2


def test_a_scoped_budget_needs_a_sql_store(fake_openrouter):
    from tests.third_party_store import DictBudgetStore

    with UsageLedger(DictBudgetStore()) as ledger, pytest.raises(ConfigurationError, match="metadata.tenant"):
        model(fake_openrouter, ledger, UserBudget(scope="metadata.tenant", max_requests=1)).invoke("Hi", user="a")
    with pytest.raises(ConfigurationError, match="scope"):
        UserBudget(scope="tenant")


def test_a_postgres_ledger_of_schema_4_fills_the_spend_per_metadata_value_when_migrated(postgres_server):
    import psycopg

    dsn = postgres_server.create_database("schema_4_budgets")
    with UsageLedger(dsn) as ledger:
        ledger.record(UsageRecord(user="app_1", cost="0.5", metadata={"tenant": "acme"}))
    with psycopg.connect(dsn) as conn:  # back to schema 4: records with metadata, no rollup nor alerts yet
        for trigger in ("insert", "delete", "update_new", "update_old"):
            conn.execute(f"DROP TRIGGER budget_spend_{trigger} ON usage_records")
        conn.execute("DROP TABLE budget_spend, budget_alerts")
        conn.execute("UPDATE usage_schema SET version = 4")
    with UsageLedger(dsn) as ledger:
        status = ledger.budget_status("acme", UserBudget(scope="metadata.tenant", period="total"))
        assert (status.usage.requests, status.usage.spent) == (1, Decimal("0.5"))
        ledger.record(UsageRecord(user="app_2", cost="0.25", metadata={"tenant": "acme"}))
        status = ledger.budget_status("acme", UserBudget(scope="metadata.tenant", period="total"))
        assert (status.usage.requests, status.usage.spent) == (2, Decimal("0.75"))
