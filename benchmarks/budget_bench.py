"""The per-user budget's cost: client CPU per call as a share of a call, on SQLite and PostgreSQL.

- ``share`` (judged): the budget's CPU per call, measured end to end as the ledger benchmark measures
  the ledger, divided by the client CPU of a call without ledger or budget. Two models per store, each
  with a durable ledger of its own on that store: one with a budget (the default lease), one without.
  The budget's cost is

  - the caller's part: the calling thread's CPU (``time.thread_time()``) in blocks of ``BLOCK`` calls
    with the budget minus a block without it run right next to them, the median of the paired
    differences;
  - plus the background part: the CPU every other thread used during the store's rounds (the budget's
    settle thread and both ledgers' writer threads; ``time.process_time()`` minus the calling thread's),
    minus twice the writer thread of the ledger without a budget (read from its own clock), which
    stands for the ledger work both models' records cost. What remains is the budget's work off the
    calling thread: settles, lease ticks, and any commit work the budget adds to its ledger.

  Between each HTTP call and the next the caches are evicted, and the budget's statements run several
  times slower than in a tight loop: only the whole call shows what an application pays.
- ``step alone``: the budget step in a tight loop, one call at a time (warm caches; a lower bound, shown
  for comparison): with the default lease (most calls draw from a lease, without store I/O), and with
  every call going to the store (``lease=1``: one atomic check-and-insert, then the settle to the
  record) for a user with 0, ``HISTORY`` and 500 records in the window. The history sizes take turns
  in another order each round, so periodic costs of the store (WAL checkpoints) fall on each alike.

- ``alerts``: what a slow ``on_alert`` costs a call: median wall time and calling-thread CPU per call of
  blocks of calls through a budget whose every call crosses an alert (each call a new user, ``alerts=(0.5,)``
  of ``max_requests=2``) with an ``on_alert`` that sleeps ``ALERT_SLEEP`` seconds, next to the same budget
  without alerts (SQLite). The callbacks run on the alerts thread, so the two should match.

SQLite is durable ledger files in a temporary folder; PostgreSQL databases on a throwaway server started
here (fsync on), skipped with its reason when the machine has no PostgreSQL binaries.
"""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import measure
from clients import API_KEY, MODEL, PROMPT

from openrouter_attribution.usage.budgets.budget import DEFAULT_LEASE
from openrouter_attribution.usage.budgets.guard import LEASE_SETTLE_AFTER

TARGETS = {"sqlite": 0.03}
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
HISTORY = 50
"""Records the budgeted user already has in the window, for the middle measurement of the step alone."""
HISTORIES = (0, HISTORY, 500)
USER = "bench_e2e"
"""The budgeted user of the end-to-end calls (far from the limit: its calls draw from leases)."""
BLOCK = 20
"""Calls per block: blocks with and without the budget alternate this often."""
ROUND_PAIRS = 25
"""Pairs of blocks a store gets in each round (about a second of calls)."""
BASE_BLOCKS = 5
"""Blocks of calls without any ledger per round: the denominator of the share."""
ALERT_SLEEP = 5.0
"""Seconds the ``on_alert`` of the alerts row sleeps."""
SETTLE_WAIT = LEASE_SETTLE_AFTER + 0.3
"""Seconds a round waits after its last call, busy with uncounted calls without any ledger: the budget's
settle thread applies the last settles (a used-up lease's after :data:`LEASE_SETTLE_AFTER`), so that each
store's background work is counted in its own rounds."""


def _isolated(ledger: Any, n: int, tag: str, history: int, lease: int) -> float:
    """CPU µs of the budget step per call for a user with ``history`` records: reserve, settle to a record."""
    from openrouter_attribution import UserBudget
    from openrouter_attribution.usage import UsageRecord
    from openrouter_attribution.usage.budgets.guard import BudgetGuard

    guard = BudgetGuard(UserBudget(max_cost=Decimal(1000), reserve=Decimal("0.001"), lease=lease), ledger)
    records = [UsageRecord(user="bench_done", cost=Decimal("0.0000054"), record_id=f"{tag}-h{history}-l{lease}-{i}")
               for i in range(n)]  # fmt: skip
    ledger.store.write_many(records)  # the calls' records, as the ledger stores them before the settle

    def no_estimate() -> None:
        raise AssertionError("a fixed reserve needs no estimate")

    user = f"bench_h{history}"
    start = time.process_time()
    for rec in records:
        hold = guard.reserve(user, no_estimate)
        assert hold is not None
        hold.record = rec
        hold.settle()
    return (time.process_time() - start) / n * 1e6


def _keep_busy(base: Any, block: int, seconds: float) -> None:
    """Make calls without any ledger for ``seconds`` (their CPU is not counted): the settle thread applies
    the round's last settles meanwhile, and the machine stays as busy as during the blocks (after an idle
    second and a half the next blocks ran about a quarter slower, the calls without any ledger included)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        measure.block_cpu(base, block, user=USER)


def _locations(folder: Path, pg: Any) -> dict[str, tuple[str, str]]:
    """Per store, the location of the ledger with a budget and of the one without."""
    spots = {"sqlite": (str(folder / "budget.db"), str(folder / "plain.db"))}
    if pg is not None:
        spots["postgres"] = (pg.create_database("budget_bench"), pg.create_database("budget_plain"))
    return spots


def _paired(
    models: dict[str, tuple[Any, Any, Any, Any]], base: Any, rounds: int, pairs: int, block: int
) -> dict[str, Any]:
    """Per store: CPU µs per call of blocks without the budget, of blocks with it, the paired differences
    of the calling thread, and the background CPU per budgeted call; and blocks without any ledger.

    ``models[name]`` is (model without budget, its ledger, model with budget, its ledger). Each round
    gives every store in turn ``pairs`` pairs of blocks (another store first each round), then flushes
    both ledgers and waits for the settles of the budget's last calls, so that what the round caused in
    the background is counted in it."""
    out: dict[str, Any] = {"none": [], **{name: {"ledger": [], "budget": [], "paired": [], "background": 0.0}
                                          for name in models}}  # fmt: skip
    for round_no in range(rounds):
        measure.block_cpu(base, block, user=USER)  # after the last round's wait the first block runs cold
        out["none"] += [measure.block_cpu(base, block, user=USER)[1] for _ in range(BASE_BLOCKS)]
        names = list(models)
        for name in names[round_no % len(names) :] + names[: round_no % len(names)]:
            plain, plain_ledger, budgeted, budget_ledger = models[name]
            clock = measure.writer_clock(plain_ledger)
            assert clock is not None
            writer, others = time.clock_gettime(clock), time.process_time() - time.thread_time()
            for pair in range(pairs):
                if pair % 2:
                    with_budget = measure.block_cpu(budgeted, block, user=USER)
                    without = measure.block_cpu(plain, block, user=USER)
                else:
                    without = measure.block_cpu(plain, block, user=USER)
                    with_budget = measure.block_cpu(budgeted, block, user=USER)
                out[name]["ledger"].append(without[1])
                out[name]["budget"].append(with_budget[1])
                out[name]["paired"].append(with_budget[0] - without[0])
            for ledger in (plain_ledger, budget_ledger):
                ledger.flush()
            _keep_busy(base, block, SETTLE_WAIT)
            others = time.process_time() - time.thread_time() - others
            out[name]["background"] += others - 2 * (time.clock_gettime(clock) - writer)
    for name in models:
        out[name]["background"] = out[name]["background"] / (rounds * pairs * block) * 1e6
    return out


def _alerts_row(folder: Path, common: dict[str, Any], smoke: bool) -> dict[str, Any]:
    """Per call, with and without a sleeping ``on_alert``: median wall µs and calling-thread CPU µs of blocks."""
    from openrouter_attribution import UsageLedger, UserBudget
    from openrouter_attribution.langchain import ChatOpenRouter

    def sleepy(alert: Any) -> None:
        time.sleep(ALERT_SLEEP)

    budgets = {
        "none": UserBudget(max_requests=2),
        "sleeping": UserBudget(max_requests=2, alerts=(0.5,), on_alert=sleepy),
    }
    blocks, block = (2, 5) if smoke else (20, BLOCK)
    out: dict[str, Any] = {"sleep_s": ALERT_SLEEP}
    users = iter(range(10**9))
    with UsageLedger(str(folder / "alerts.db")) as ledger:
        models = {name: ChatOpenRouter(**common, ledger=ledger, budget=b) for name, b in budgets.items()}
        for model in models.values():
            model.invoke(PROMPT, user="bench_alert_warm")  # prices, connections, the alerts thread
        walls: dict[str, list[float]] = {name: [] for name in models}
        cpus: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(blocks):
            for name, model in models.items():
                wall, cpu = time.perf_counter(), time.thread_time()
                for _ in range(block):
                    model.invoke(PROMPT, user=f"bench_alert_{next(users)}")  # a new user: every call alerts
                walls[name].append((time.perf_counter() - wall) / block * 1e6)
                cpus[name].append((time.thread_time() - cpu) / block * 1e6)
        for name in models:
            out[name] = {"wall_us": measure.median(walls[name]), "caller_cpu_us": measure.median(cpus[name])}
    return out  # the checks still queued then find the ledger closed: they log once and stop


def measure_budget(base_url: str, settings: Any, results: dict[str, Any]) -> None:
    """Fill ``results["budget"]``; a variant that cannot be measured raises (the run must fail)."""
    from openrouter_attribution import UsageLedger, UserBudget
    from openrouter_attribution.langchain import ChatOpenRouter
    from openrouter_attribution.usage import UsageRecord

    out: dict[str, Any] = {"variants": {}, "skipped": {}, "history": HISTORY}
    results["budget"] = out
    pg = measure.start_postgres(out["skipped"], "postgres")
    folder = Path(tempfile.mkdtemp(prefix="budget-bench-"))
    rounds, pairs, block = (2, 2, 5) if settings.smoke else (max(8, 3 * settings.rounds), ROUND_PAIRS, BLOCK)
    isolated_rounds, isolated_n = (1, 50) if settings.smoke else (5, 1000)
    try:
        spots = _locations(folder, pg)
        ledgers = {name: UsageLedger(budgeted) for name, (budgeted, _) in spots.items()}
        plain_ledgers = {name: UsageLedger(plain) for name, (_, plain) in spots.items()}
        for ledger in ledgers.values():
            for history in HISTORIES:
                ledger.record_many(
                    [UsageRecord(user=f"bench_h{history}", cost=Decimal("0.0000054")) for _ in range(history)]
                )
        budget = UserBudget(max_cost=Decimal(1000), reserve=Decimal("0.001"))  # the default lease
        common = {"model": MODEL, "base_url": base_url, "api_key": API_KEY}
        base = ChatOpenRouter(**common)
        models = {name: (ChatOpenRouter(**common, ledger=plain_ledgers[name]), plain_ledgers[name],
                         ChatOpenRouter(**common, ledger=ledger, budget=budget), ledger)
                  for name, ledger in ledgers.items()}  # fmt: skip
        for model in (base, *(m for group in models.values() for m in group[::2])):
            measure.block_cpu(model, 5 if settings.smoke else 50, user=USER)  # warm up
        e2e = _paired(models, base, rounds, pairs, block)
        steps: dict[str, dict[int, list[float]]] = {name: {h: [] for h in HISTORIES} for name in spots}
        leased: dict[str, list[float]] = {name: [] for name in spots}
        for round_no in range(isolated_rounds):
            shift = round_no % len(HISTORIES)
            for name in spots:
                tag = f"r{round_no}"
                for history in HISTORIES[shift:] + HISTORIES[:shift]:  # every call through the store
                    steps[name][history].append(_isolated(ledgers[name], isolated_n, tag, history, 1))
                leased[name].append(_isolated(ledgers[name], isolated_n, tag, HISTORY, DEFAULT_LEASE))
        call = measure.median(e2e["none"])
        out["call_cpu_us"] = call
        out["block"] = block
        for name in spots:
            paired = e2e[name]["paired"]
            caller = measure.median(paired)
            cost = None if caller is None else caller + e2e[name]["background"]
            low, high = measure.quartiles(paired)
            out["variants"][name] = {
                "label": LABELS[name], "budget_cpu_us": cost, "caller_cpu_us": caller,
                "caller_cpu_us_quartiles": [low, high], "background_cpu_us": e2e[name]["background"],
                "share": cost / call if call and cost is not None else None, "samples": len(paired),
                "e2e_ledger_us": measure.median(e2e[name]["ledger"]),
                "e2e_budget_us": measure.median(e2e[name]["budget"]),
                "steps_cpu_us": {str(h): measure.median(v) for h, v in steps[name].items()},
                "leased_step_cpu_us": measure.median(leased[name]),
            }  # fmt: skip
        for ledger in (*ledgers.values(), *plain_ledgers.values()):
            ledger.close()
        out["alerts"] = _alerts_row(folder, common, settings.smoke)
    finally:
        if pg is not None:
            pg.stop()


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Target verdicts for the budget (PostgreSQL is reported, not judged)."""
    variants = results.get("budget", {}).get("variants", {})
    return measure.share_targets(variants, TARGETS, lambda name: f"per-user budget on {LABELS[name]}")


def markdown_lines(results: dict[str, Any]) -> list[str]:
    """The report section."""
    budget = results.get("budget")
    if not budget:
        return []
    lines = ["", "## Cost of a per-user budget (our LangChain model, sync calls, durable ledger)", "",
             f"A call without ledger or budget: {_fmt(budget.get('call_cpu_us'))} µs client CPU.", "",
             "| store | budget CPU µs/call | caller's thread µs/call (paired; quartiles) | other threads µs/call "
             "| share of a call | call with ledger µs | with ledger + budget µs | step alone µs, leases "
             "| step alone µs, every call in the store: 0 / 50 / 500 records in the window |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for data in budget["variants"].values():
        share, quartiles = data.get("share"), data.get("caller_cpu_us_quartiles")
        caller = _fmt(data.get("caller_cpu_us"), 1)
        if quartiles:
            caller += f" ({_fmt(quartiles[0])} to {_fmt(quartiles[1])})"
        steps = data.get("steps_cpu_us", {})
        alone = " / ".join(_fmt(steps.get(str(h)), 1) for h in HISTORIES)
        cells = [data["label"], _fmt(data.get("budget_cpu_us"), 1), caller, _fmt(data.get("background_cpu_us"), 1),
                 f"{share:.2%}" if share is not None else "", _fmt(data.get("e2e_ledger_us")),
                 _fmt(data.get("e2e_budget_us")), _fmt(data.get("leased_step_cpu_us"), 1), alone]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    samples = max((v.get("samples") or 0 for v in budget["variants"].values()), default=0)
    if samples:
        lines.append(f"\nEnd to end: {samples} pairs of blocks of {budget.get('block')} calls per row (calls with a "
                     "ledger and the budget next to calls with a ledger of their own only); the caller's thread is the "
                     "median of their paired differences, the other threads what every other thread of the process "
                     "used in the store's rounds, less twice the writer thread of the ledger without a budget. The "
                     "step alone is the budget's own CPU in a tight loop with warm caches: a lower bound.")  # fmt: skip
    alerts = budget.get("alerts")
    if alerts:
        none, sleeping = alerts["none"], alerts["sleeping"]
        lines += ["", f"Alerts (SQLite): every call crossing an alert whose `on_alert` sleeps {alerts['sleep_s']:g} s "
                  "(on the alerts thread) next to the same budget without alerts.", "",
                  "| on_alert | wall µs/call | caller's thread CPU µs/call |", "|---|---|---|",
                  f"| none | {_fmt(none['wall_us'])} | {_fmt(none['caller_cpu_us'])} |",
                  f"| sleeps {alerts['sleep_s']:g} s | {_fmt(sleeping['wall_us'])} | "
                  f"{_fmt(sleeping['caller_cpu_us'])} |"]  # fmt: skip
    for name, reason in budget.get("skipped", {}).items():
        lines.append(f"\n- {LABELS[name]} skipped: {reason}")
    return lines


def _fmt(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"
