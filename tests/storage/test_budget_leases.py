"""Leases on every backend: far from the limit one store write serves many calls, near it every call counts."""

from __future__ import annotations

import multiprocessing
import time
from decimal import Decimal

import pytest

from openrouter_attribution import BudgetExceededError, UsageLedger, UsageRecord, UserBudget
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.usage.budgets import guard as budget_guard
from openrouter_attribution.usage.budgets.budget import backend_of
from openrouter_attribution.usage.budgets.guard import LEASE_IDLE, LEASE_SETTLE_AFTER, BudgetGuard, LeaseHold
from tests.storage.test_budget_processes import one_call_cost
from tests.storage.workers import budgeted_calls

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def ledger(backend):
    # Records committed before record() returns: these tests read the reservation rows right after.
    with UsageLedger(backend.location, durability="committed") as ledger:
        yield ledger


def reservations(backend) -> list[tuple[int, bool]]:
    """``(slots, linked)`` of every reservation row."""
    return sorted(
        (int(n), bool(linked))
        for n, linked in backend.rows("SELECT slots, record_id IS NOT NULL FROM budget_reservations")
    )


def call(guard: BudgetGuard, ledger: UsageLedger, n: int, user: str = "app_1") -> None:
    """``n`` calls in a row, each recorded as a durable ledger records it, then settled."""
    for _ in range(n):
        hold = guard.reserve(user, lambda: None)
        assert hold is not None
        hold.record = UsageRecord(user=user, cost=Decimal("0.01"))
        ledger.record(hold.record)
        hold.settle()


def test_far_from_the_limit_one_store_write_serves_a_lease_of_calls(ledger, backend):
    guard = BudgetGuard(UserBudget(max_cost=Decimal(10), reserve=Decimal("0.01"), lease=8), ledger)
    call(guard, ledger, 3)
    assert reservations(backend) == [(8, False)]  # one lease row: calls 2 and 3 did not touch the store
    usage = ledger.budget_status("app_1").usage
    assert (usage.in_flight, usage.reserved, usage.spent) == (8, Decimal("0.08"), Decimal("0.03"))  # counted in full
    call(guard, ledger, 5)  # the lease is used up: it is released with its calls settled to their records
    guard.reserve("app_1", lambda: None).settle()  # a new lease, twice as large (the last was used up fast)
    assert reservations(backend) == [(8, False), (16, False)]  # the old one waits a second to be settled
    assert ledger.budget_status("app_1").usage.requests == 8  # a read settles what waits
    assert reservations(backend) == [(16, False)]


def test_a_lease_whose_records_wait_in_the_journal_keeps_each_call_counted_until_they_are_stored(backend):
    with UsageLedger(backend.location, commit_interval=60) as ledger:  # only flushes commit here
        budget = UserBudget(max_cost=Decimal(10), reserve=Decimal("0.01"), lease=8, max_lease=8)
        guard = BudgetGuard(budget, ledger)
        call(guard, ledger, 8)
        guard.reserve("app_1", lambda: None).settle()  # a new lease: it does not wait for the journal
        assert reservations(backend) == [(8, False)] * 2  # the used-up lease waits to be settled
        backend_of(ledger.store).settles.flush()  # settled before the journal is committed:
        assert reservations(backend) == [(1, True)] * 8 + [(8, False)]  # each call keeps its reserve
        assert backend.rows("SELECT COUNT(*) FROM usage_records") == [(0,)]
        usage = ledger.budget_status("app_1").usage  # a read commits the journal first
        assert (usage.spent, usage.requests, usage.in_flight) == (Decimal("0.08"), 8, 8)  # counted once each
        call(guard, ledger, 7)  # the second lease is used up; a third one is asked for
        guard.reserve("app_1", lambda: None).settle()
        # The first calls' reserves stay until a sweep; the second lease waits to be settled.
        assert reservations(backend) == [(1, True)] * 8 + [(8, False)] * 2
        usage = ledger.budget_status("app_1").usage  # ... but a call whose record is stored counts once
        assert (usage.spent, usage.requests, usage.in_flight) == (Decimal("0.15"), 15, 8)


def taken(guard: BudgetGuard, ledger: UsageLedger, n: int) -> list[int]:
    """Make ``n`` calls as :func:`call` does; the size of each reservation they took in the store, in order
    (a lease's size, or 1 for a call that reserved alone)."""
    sizes, seen = [], set()
    for _ in range(n):
        hold = guard.reserve("app_1", lambda: None)
        assert hold is not None
        if hold.id not in seen:
            seen.add(hold.id)
            sizes.append(hold.lease.slots if isinstance(hold, LeaseHold) else 1)
        hold.record = UsageRecord(user="app_1", cost=Decimal("0.01"))
        ledger.record(hold.record)
        hold.settle()
    return sizes


def test_a_busy_user_s_leases_double_up_to_max_lease(ledger, backend):
    guard = BudgetGuard(UserBudget(max_requests=10_000, lease=4, max_lease=16), ledger)
    assert taken(guard, ledger, 4 + 8 + 16 + 16 + 1) == [4, 8, 16, 16, 16]  # each used up within a second


def test_a_lease_used_up_slowly_makes_the_next_one_smaller(ledger, backend, monkeypatch):
    guard = BudgetGuard(UserBudget(max_requests=10_000, lease=4, max_lease=64), ledger)
    assert taken(guard, ledger, 4 + 8 + 16 + 1) == [4, 8, 16, 32]
    monkeypatch.setattr(budget_guard, "LEASE_GROW", 0.0)  # from now on every lease takes "too long"
    # The rest of the lease of 32, then leases halved each time, never below `lease`.
    assert taken(guard, ledger, 31 + 16 + 8 + 4 + 1) == [32, 16, 8, 4, 4]


def test_a_lease_too_large_for_the_room_left_halves_the_next_request(ledger, backend, monkeypatch):
    monkeypatch.setattr(budget_guard, "LEASE_SETTLE_AFTER", 0.0)  # used-up leases stop counting at the next step
    guard = BudgetGuard(UserBudget(max_requests=100, lease=4, max_lease=64), ledger)
    # 4 + 8 + 16 + 32 = 60 calls; a lease of 64 needs room for 128: the call reserves alone, and so does
    # the next one, asking for 32 (room for 64 needed, 39 left); then 16 fits (room for 32, 38 left).
    assert taken(guard, ledger, 60 + 1 + 1 + 1) == [4, 8, 16, 32, 1, 1, 16]


def test_an_idle_user_starts_again_at_the_first_lease_size(ledger, backend):
    guard = BudgetGuard(UserBudget(max_requests=10_000, lease=4, max_lease=64), ledger)
    assert taken(guard, ledger, 4 + 8 + 1) == [4, 8, 16]
    deadline = time.monotonic() + LEASE_IDLE + 10
    while ledger.budget_status("app_1").usage.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)  # the lease is released after a second without calls
    assert taken(guard, ledger, 1) == [4]


def test_a_used_up_lease_is_settled_a_second_later_without_a_row_per_call(ledger, backend):
    guard = BudgetGuard(UserBudget(max_requests=10_000, lease=8, max_lease=8), ledger)
    assert taken(guard, ledger, 9) == [8, 8]
    assert reservations(backend) == [(8, False), (8, False)]  # the used-up lease still counts in full
    deadline = time.monotonic() + LEASE_SETTLE_AFTER + 10
    while len(reservations(backend)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Settled by the background thread, linking no call (their records were stored); the second lease,
    # idle since its one call, may have been released by then as well.
    assert reservations(backend) in ([(8, False)], [])
    assert ledger.budget_status("app_1").usage.requests == 9


def test_a_call_refused_while_a_used_up_lease_waits_settles_it_and_asks_again(ledger, backend):
    guard = BudgetGuard(UserBudget(max_requests=24, lease=8, max_lease=8), ledger)
    # One lease (room for 16 needed), then calls alone: the waiting lease counts 8 until the 17th call,
    # which the store refuses (16 done + 8 held + 1 > 24); the lease is then settled and the call fits.
    assert taken(guard, ledger, 24) == [8] + [1] * 16
    with pytest.raises(BudgetExceededError):
        guard.reserve("app_1", lambda: None)
    usage = ledger.budget_status("app_1").usage
    assert (usage.requests, usage.in_flight) == (24, 0)


def test_settling_a_large_lease_links_exactly_the_calls_whose_records_are_not_stored(ledger, backend):
    guard = BudgetGuard(UserBudget(max_requests=10_000, lease=300, max_lease=300), ledger)
    holds = [guard.reserve("app_1", lambda: None) for _ in range(300)]
    records = [UsageRecord(user="app_1", cost=Decimal("0.01")) for _ in holds]
    ledger.record_many(records[::2])  # every other record is stored; the rest are still on their way
    for hold, rec in zip(holds, records, strict=True):
        hold.record = rec
        hold.settle()
    backend_of(ledger.store).settles.flush()
    linked = backend.rows("SELECT record_id FROM budget_reservations WHERE record_id IS NOT NULL")
    assert sorted(rid for (rid,) in linked) == sorted(rec.record_id for rec in records[1::2])
    assert reservations(backend) == [(1, True)] * 150  # the lease itself is released


def test_near_the_limit_every_call_reserves_alone_and_exactly(ledger, backend):
    guard = BudgetGuard(UserBudget(max_requests=20, lease=4), ledger)
    call(guard, ledger, 20)  # leases while room for 8 calls is left, single calls after: not one lost
    with pytest.raises(BudgetExceededError):
        call(guard, ledger, 1)
    assert ledger.budget_status("app_1").usage.requests == 20


def test_an_idle_lease_is_released(ledger, backend):
    guard = BudgetGuard(UserBudget(max_requests=100, lease=8), ledger)
    call(guard, ledger, 2)
    assert ledger.budget_status("app_1").usage.in_flight == 8
    deadline = time.monotonic() + LEASE_IDLE + 10
    while ledger.budget_status("app_1").usage.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    usage = ledger.budget_status("app_1").usage
    assert (usage.in_flight, usage.requests) == (0, 2)


def test_closing_the_ledger_releases_leases(backend):
    with UsageLedger(backend.location) as ledger:
        call(BudgetGuard(UserBudget(max_requests=100, lease=8), ledger), ledger, 3)
    assert reservations(backend) == []


def test_a_call_priced_above_the_lease_does_not_draw_from_it(ledger, backend):
    guard = BudgetGuard(UserBudget(max_cost=Decimal(10), lease=4), ledger)
    guard.reserve("app_1", lambda: Decimal("0.01")).settle()
    hold = guard.reserve("app_1", lambda: Decimal("0.5"))  # a longer prompt: a lease at its own price
    usage = ledger.budget_status("app_1").usage  # the cheaper lease was let go
    assert (usage.in_flight, usage.reserved) == (4, Decimal("2.0"))
    hold.settle()


def test_processes_with_leases_never_take_more_than_the_budget(backend, fake_openrouter):
    cost = one_call_cost(fake_openrouter, backend.location)
    covered, processes, calls = 60, 4, 30
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    args = (backend.location, fake_openrouter.base_url, fake_openrouter.api_key, str(cost * covered), str(cost),
            "langchain-async", calls, barrier, results, 4)  # fmt: skip
    procs = [ctx.Process(target=budgeted_calls, args=args) for _ in range(processes)]
    for p in procs:
        p.start()
    barrier.wait(120)
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * processes
    sent = sum(n for n, _ in outcomes)
    assert sum(body["user"] == "app_budgeted" for body in (r.body for r in fake_openrouter.chat_requests)) == sent
    assert covered - 4 * processes * 2 <= sent <= covered  # leases may refuse a little early, never let more through
    with UsageLedger(backend.location) as ledger:
        (spent,) = ledger.totals("user", user="app_budgeted")
        assert spent.cost <= cost * covered
    # What is left is reserved by no one once every process closed its ledger.
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations WHERE record_id IS NULL") == [(0,)]


def test_the_model_path_grows_leases_and_sends_every_call(fake_openrouter, backend):
    with UsageLedger(backend.location) as ledger:
        budget = UserBudget(max_requests=1000, lease=4, max_lease=16)
        model = ChatOpenRouter(model=MODEL, base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key,
                               max_retries=0, ledger=ledger, budget=budget)  # fmt: skip
        for _ in range(4 + 8 + 16 + 1):  # leases of 4, 8 and 16, each used up within a second, then one more
            model.invoke("hi", user="app_1")
        assert [r.body["user"] for r in fake_openrouter.chat_requests] == ["app_1"] * 29
        assert ledger.budget_status("app_1").usage.requests == 29  # a read settles the used-up leases
        assert reservations(backend) == [(16, False)]  # the fourth lease: as large as max_lease allows


def test_the_model_path_uses_leases(fake_openrouter, backend):
    with UsageLedger(backend.location) as ledger:
        budget = UserBudget(max_requests=1000, lease=16)
        model = ChatOpenRouter(model=MODEL, base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key,
                               max_retries=0, ledger=ledger, budget=budget)  # fmt: skip
        for _ in range(10):
            model.invoke("hi", user="app_1")
        assert reservations(backend) == [(16, False)]
        assert ledger.budget_status("app_1").usage.requests == 10
