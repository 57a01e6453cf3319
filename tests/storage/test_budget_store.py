"""The budget step on every backend: check-and-reserve is atomic, settles to records, expires, windows roll."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from openrouter_attribution import BudgetExceededError, UsageLedger, UsageRecord, UserBudget
from openrouter_attribution.usage.budgets.budget import SupportsBudgets, SupportsQueuedSettles, backend_of, window
from openrouter_attribution.usage.budgets.guard import BudgetGuard
from tests.storage.conftest import BACKENDS, make_backend
from tests.third_party_store import DictBudgetStore

DAY = 86400.0
NOW = 1767312000.0 + 3600  # 2026-01-02T01:00:00Z, a Friday


class Clock:
    """An injectable clock: budgets read it, tests move it."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(backend):
    # Committed before record() returns: these tests change the rows behind the ledger's back right after.
    with UsageLedger(backend.location, durability="committed") as ledger:
        yield ledger


@pytest.fixture(params=[*BACKENDS, "third-party"])
def any_ledger(request, tmp_path):
    """A committed ledger on each backend, and on a store written only to the documented protocols
    (``UsageStore`` + ``SupportsBudgets``): the budget behaviour is the same on all of them."""
    store = DictBudgetStore() if request.param == "third-party" else make_backend(request.param, request, tmp_path)
    location = store if isinstance(store, DictBudgetStore) else store.location
    with UsageLedger(location, durability="committed") as ledger:
        yield ledger


AT_NOW = UserBudget(clock=Clock())  # what budget_status reads: the window of NOW


def guard(ledger, clock=None, **budget) -> BudgetGuard:
    return BudgetGuard(UserBudget(clock=clock or Clock(), **budget), ledger)


def no_estimate():
    raise AssertionError("a fixed reserve needs no estimate")


def record(user, cost, *, time=NOW, record_id=None, **fields):
    return UsageRecord(
        time=time, user=user, cost=None if cost is None else Decimal(cost), record_id=record_id or "", **fields
    )


def test_reservations_count_until_the_limit(ledger, backend):
    g = guard(ledger, max_cost=Decimal("0.30"), reserve=Decimal("0.10"))
    holds = [g.reserve("app_1", no_estimate) for _ in range(3)]
    with pytest.raises(BudgetExceededError) as refused:
        g.reserve("app_1", no_estimate)
    err = refused.value
    assert (err.user, err.kind, err.limit, err.spent, err.reserved, err.requested) == (
        "app_1",
        "cost",
        Decimal("0.30"),
        Decimal(0),
        Decimal("0.30"),
        Decimal("0.10"),
    )
    assert err.period == "day"
    assert err.resets_at.timestamp() == window("day", NOW)[1]
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations") == [(3,)]
    assert g.reserve("app_2", no_estimate) is not None  # another user's budget is their own
    assert ledger.budget_status("app_1", AT_NOW).usage.in_flight == 3
    for hold in holds:
        hold.settle()  # released without a record: nothing was spent
    assert ledger.budget_status("app_1", AT_NOW).usage.in_flight == 0
    assert g.reserve("app_1", no_estimate) is not None


def test_a_settled_reservation_gives_way_to_its_record(any_ledger):
    g = guard(any_ledger, max_cost=Decimal("1"), reserve=Decimal("0.4"))
    hold = g.reserve("app_1", no_estimate)
    rec = record("app_1", "0.25", record_id="gen-1")
    any_ledger.record(rec)  # durable: committed before record() returns
    hold.record = rec
    hold.settle()  # queued: applied by the next reserve step, a read of the budget, or within 50 ms
    status = any_ledger.budget_status("app_1", UserBudget(max_cost=Decimal(1), clock=Clock()))
    assert (status.usage.spent, status.usage.requests, status.usage.in_flight) == (Decimal("0.25"), 1, 0)
    assert (status.remaining_cost, status.usage.reserved) == (Decimal("0.75"), Decimal(0))


def test_settles_travel_with_the_next_reserve_step(ledger, backend):
    g = guard(ledger, max_requests=2)
    backend_of(ledger.store).settles.delay = 3600  # no background apply during this test
    g.reserve("app_1", no_estimate).settle()
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations") == [(1,)]  # queued, still counting
    second = g.reserve("app_1", no_estimate)  # within 2 requests: the first call's release came along
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations") == [(1,)]
    second.settle()
    ledger.close()  # a closing ledger applies what is queued
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations") == [(0,)]


def test_a_settle_no_reserve_step_takes_is_applied_soon_after(ledger, backend):
    import time

    guard(ledger, max_requests=2).reserve("app_1", no_estimate).settle()
    deadline = time.monotonic() + 10
    while backend.rows("SELECT COUNT(*) FROM budget_reservations") != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations") == [(0,)]


def test_a_reservation_whose_record_is_not_stored_yet_keeps_counting(ledger, backend):
    """A spooled or buffered record lands later: until then the reservation counts, never neither."""
    g = guard(ledger, max_cost=Decimal("1"), reserve=Decimal("0.4"))
    hold = g.reserve("app_1", no_estimate)
    hold.record = record("app_1", "0.25", record_id="gen-late")
    hold.settle()
    usage = ledger.budget_status("app_1", AT_NOW).usage
    assert (usage.spent, usage.reserved, usage.in_flight) == (Decimal(0), Decimal("0.4"), 1)
    ledger.record(hold.record)  # the record arrives: the reservation stops counting at once
    usage = ledger.budget_status("app_1", AT_NOW).usage
    assert (usage.spent, usage.reserved, usage.in_flight) == (Decimal("0.25"), Decimal(0), 0)
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations WHERE record_id IS NOT NULL") == [(1,)]
    sweeper = guard(ledger, max_requests=1000, lease=1)
    for _ in range(64):  # every 64th reserve step (SWEEP_EVERY) sweeps the user's linked and expired reservations away
        sweeper.reserve("app_1", no_estimate).settle()
    assert backend.rows("SELECT COUNT(*) FROM budget_reservations WHERE record_id IS NOT NULL") == [(0,)]


def test_a_process_that_linked_many_records_sweeps_at_its_next_reserve_step(ledger, backend, monkeypatch):
    """A used-up lease links a row per call it served; once SWEEP_LINKS rows are linked, the next
    reserve step sweeps those whose records have landed, long before the SWEEP_EVERY-th step."""
    from openrouter_attribution.usage.budgets import guard as budget_guard
    from openrouter_attribution.usage.budgets.settles import SWEEP_EVERY, SWEEP_LINKS

    monkeypatch.setattr(budget_guard, "LEASE_SETTLE_AFTER", 0.0)  # a used-up lease is settled at the next step
    linked = "SELECT COUNT(*) FROM budget_reservations WHERE record_id IS NOT NULL"
    leased = guard(ledger, max_requests=100_000, lease=SWEEP_LINKS)
    holds = [leased.reserve("app_1", no_estimate) for _ in range(SWEEP_LINKS)]  # step 1: one lease serves them
    assert len({hold.id for hold in holds}) == 1
    for i, hold in enumerate(holds):  # settled before their records arrive: each call keeps a linked row
        hold.record = record("app_1", "0.001", record_id=f"gen-{i}")
        hold.settle()
    leased.reserve("app_1", no_estimate).settle()  # step 2: a new lease; the old one's links come along
    assert backend.rows(linked) == [(SWEEP_LINKS,)]
    ledger.record_many([hold.record for hold in holds[:-1]])  # all but one record land
    single = guard(ledger, max_requests=100_000, lease=1)
    single.reserve("app_1", no_estimate).settle()  # step 3 sweeps
    assert SWEEP_EVERY > 3  # so the step count did not call for this sweep
    assert backend.rows(linked) == [(1,)]  # the call whose record has not arrived still counts


def test_a_reservation_of_a_dead_process_expires(any_ledger):
    clock = Clock()
    g = guard(any_ledger, clock, max_requests=1, reservation_ttl=60)
    g.reserve("app_1", no_estimate)  # never settled
    with pytest.raises(BudgetExceededError, match="in flight"):
        g.reserve("app_1", no_estimate)
    clock.now += 61
    assert g.reserve("app_1", no_estimate) is not None


def test_requests_count_records_and_calls_in_flight(any_ledger):
    g = guard(any_ledger, max_requests=3)
    any_ledger.record(record("app_1", None, outcome="RateLimitError"))  # failed calls are requests too
    g.reserve("app_1", no_estimate)
    g.reserve("app_1", no_estimate)
    with pytest.raises(BudgetExceededError) as refused:
        g.reserve("app_1", no_estimate)
    err = refused.value
    assert (err.kind, err.spent, err.reserved, err.limit) == ("requests", 1, 2, 3)


def test_a_window_that_has_passed_no_longer_counts(any_ledger):
    clock = Clock()
    g = guard(any_ledger, clock, max_cost=Decimal("0.5"), reserve=Decimal("0.1"))
    any_ledger.record(record("app_1", "0.45", time=NOW - 60))
    with pytest.raises(BudgetExceededError):
        g.reserve("app_1", no_estimate)
    clock.now = window("day", NOW)[1]  # midnight UTC: a new day
    assert g.reserve("app_1", no_estimate) is not None
    weekly = guard(any_ledger, clock, max_cost=Decimal("0.5"), reserve=Decimal("0.1"), period="week")
    with pytest.raises(BudgetExceededError):  # the same Friday is still in this week
        weekly.reserve("app_1", no_estimate)
    clock.now = window("week", NOW)[1]
    assert weekly.reserve("app_1", no_estimate) is not None


def test_billed_cost_counts_where_a_record_is_reconciled(ledger, backend):
    ledger.record(record("app_1", "0.40", record_id="gen-b"))
    backend.write("UPDATE usage_records SET billed_cost = 0.10, reconcile_status = 'billed'")
    g = guard(ledger, max_cost=Decimal("0.5"), reserve=Decimal("0.3"))
    assert g.reserve("app_1", no_estimate) is not None  # 0.10 billed + 0.3 <= 0.5, though 0.40 was reported


def test_unattributed_calls_share_one_budget(any_ledger):
    g = guard(any_ledger, max_requests=2)
    any_ledger.record(record(None, "0.1"))
    g.reserve(None, no_estimate)
    with pytest.raises(BudgetExceededError) as refused:
        g.reserve(None, no_estimate)
    assert refused.value.user is None
    assert "shared unattributed budget" in str(refused.value)
    assert g.reserve("app_1", no_estimate) is not None


def test_per_user_limits(any_ledger):
    g = guard(any_ledger, max_requests=1, limits={"app_vip": UserBudget(max_requests=3), "app_free": UserBudget()})
    assert [g.reserve("app_vip", no_estimate) is not None for _ in range(3)] == [True] * 3
    with pytest.raises(BudgetExceededError):
        g.reserve("app_vip", no_estimate)
    assert g.reserve("app_free", no_estimate) is None  # a budget without limits: not budgeted at all
    g.reserve("app_1", no_estimate)
    with pytest.raises(BudgetExceededError):
        g.reserve("app_1", no_estimate)


def test_a_derived_reserve_is_used_when_none_is_fixed(any_ledger):
    g = guard(any_ledger, max_cost=Decimal("1"), fallback_reserve=Decimal("0.2"))
    g.reserve("app_1", lambda: Decimal("0.7"))  # the call's ceiling, from the model's pricing
    g.reserve("app_1", lambda: None)  # no pricing known: the fallback reserve
    with pytest.raises(BudgetExceededError) as refused:
        g.reserve("app_1", lambda: Decimal("0.15"))
    assert (refused.value.reserved, refused.value.requested) == (Decimal("0.9"), Decimal("0.15"))


def test_threads_never_take_more_than_the_limit(any_ledger):
    g = guard(any_ledger, max_cost=Decimal("1.0"), reserve=Decimal("0.1"))
    granted, refused = [], []
    barrier = threading.Barrier(20)

    def take() -> None:
        barrier.wait()
        try:
            granted.append(g.reserve("app_1", no_estimate))
        except BudgetExceededError:
            refused.append(1)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(granted), len(refused)) == (10, 10)


def test_a_store_written_to_the_protocol_alone_reserves_every_call_and_refuses_with_the_budget_error():
    """No ``settles`` (an optional extra): no leases, which need its ticker, and a refusal is the budget's
    error, never an AttributeError."""
    store = DictBudgetStore()
    assert isinstance(store, SupportsBudgets)
    assert not isinstance(store, SupportsQueuedSettles)
    with UsageLedger(store) as ledger:
        g = guard(ledger, max_requests=3, lease=32)
        holds = [g.reserve("app_1", no_estimate) for _ in range(3)]
        with pytest.raises(BudgetExceededError) as refused:
            g.reserve("app_1", no_estimate)
        assert (refused.value.kind, refused.value.reserved) == ("requests", 3)
        for hold in holds:
            hold.settle()
        assert ledger.budget_status("app_1", AT_NOW).usage.in_flight == 0
    assert store.asked_slots == [1, 1, 1, 1, 1]  # the refused call was asked about again, settle_all=True


def test_stores_without_budgets_are_reported():
    from openrouter_attribution.usage import MemoryUsageStore

    assert backend_of(MemoryUsageStore()) is None


def test_the_budget_command_shows_spend_reservations_limit_and_reset(backend, capsys):
    import json
    import time

    from openrouter_attribution.cli import main

    now = time.time()
    with UsageLedger(backend.location) as ledger:
        ledger.record(record("app_1", "0.125", time=now - 1))
        ledger.record(record("app_1", "0.25", time=now - 2 * DAY))  # another day: not in today's window
        guard(ledger, Clock(now), max_cost=Decimal("1"), reserve=Decimal("0.5")).reserve("app_1", no_estimate)
    assert main(["budget", "--db", backend.location, "--user", "app_1", "--max-cost", "1", "--max-requests", "10"]) == 0
    out = capsys.readouterr().out
    _, reset = window("day", now)
    assert "spent      0.125 USD in 1 request(s)\n" in out
    assert "in flight  0.5 USD held by 1 call(s)\n" in out
    assert "limit      1 USD, 10 requests\n" in out
    assert "remaining  0.375 USD, 8 requests\n" in out
    assert time.strftime("resets %Y-%m-%dT00:00:00Z", time.gmtime(reset)) in out
    assert main(["budget", "--db", backend.location, "--user", "app_1", "--period", "total", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["max_cost"], data["remaining_cost"], data["resets_at"]) == (None, None, None)
    # The call in flight is held by a daily budget: a budget of another period counts its record once stored.
    assert (data["requests"], data["spent"], data["in_flight"]) == (2, 0.375, 0)
    with pytest.raises(SystemExit) as bad:
        main(["budget", "--db", backend.location, "--user", "app_1", "--max-cost", "-1"])
    assert bad.value.code == 2
    assert "must be a finite amount >= 0" in capsys.readouterr().err


def test_spend_follows_every_change_to_the_records(ledger, backend):
    """Inserts, billed-cost updates and deletes by any writer count at once (SQLite keeps a rollup)."""
    g = guard(ledger, max_cost=Decimal("10"), reserve=Decimal("0.01"))
    g.reserve("app_1", no_estimate).settle()  # budgets now in use on this ledger
    ledger.record_many([record("app_1", "0.5", record_id="a"), record("app_1", "0.25", record_id="b"),
                        record("app_1", "0.125", time=NOW - DAY, record_id="yesterday")])  # fmt: skip
    backend.write("UPDATE usage_records SET billed_cost = 0.1 WHERE record_id = 'a'")  # reconciled
    backend.write("INSERT INTO usage_records (record_id, time, \"user\", cost, streamed, outcome, kind) "
                  f"VALUES ('other-tool', {NOW}, 'app_1', 0.0625, {'false' if backend.name == 'postgres' else 0}, "
                  "'ok', 'chat')")  # fmt: skip
    usage = ledger.budget_status("app_1", AT_NOW).usage
    assert (usage.spent, usage.requests) == (Decimal("0.4125"), 3)
    ledger.store.prune(NOW)  # the day before goes; today's window is unchanged
    backend.write("DELETE FROM usage_records WHERE record_id = 'b'")
    usage = ledger.budget_status("app_1", AT_NOW).usage
    assert (usage.spent, usage.requests) == (Decimal("0.1625"), 2)
    total = ledger.budget_status("app_1", UserBudget(period="total", clock=Clock())).usage
    assert total.requests == 2  # the pruned record is gone from every window
