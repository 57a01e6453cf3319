"""The per-user budget's cost: client CPU per call as a share of a call, on SQLite and PostgreSQL.

- ``share`` (judged): the budget's CPU per call measured end to end, as the ledger benchmark measures the
  ledger: our LangChain model's sync calls with a durable ledger and a budget minus the same calls with
  the same ledger and no budget, in blocks that alternate (each budget block is paired with a no-budget
  block run right next to it; the median of the paired differences over many rounds), divided by the
  client CPU of a call without ledger or budget. All CPU is ``time.process_time()``: every thread of the
  process counts (the settle thread's too). End to end is what an application pays: between two calls
  the HTTP request evicts the CPU caches, and the budget's statements then run cold, several times
  slower than in a tight loop.
- ``step alone``: the budget step in a tight loop, one call at a time (warm caches; a lower bound, shown
  for comparison): with the default lease (most calls draw from a lease, without store I/O), and with
  every call going to the store (``lease=1``: one atomic check-and-insert, then the settle to the
  record) for a user with 0, ``HISTORY`` and 500 records in the window. The history sizes take turns
  in another order each round, so periodic costs of the store (WAL checkpoints) fall on each alike.

SQLite is a durable ledger file in a temporary folder; PostgreSQL a throwaway server started here
(fsync on), skipped with its reason when the machine has no PostgreSQL binaries.
"""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import measure
from clients import API_KEY, MODEL, PROMPT

from openrouter_attribution.usage.budget import DEFAULT_LEASE

TARGETS = {"sqlite": 0.03}
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
HISTORY = 50
"""Records the budgeted user already has in the window, for the middle measurement of the step alone."""
HISTORIES = (0, HISTORY, 500)


def _isolated(ledger: Any, n: int, tag: str, history: int, lease: int) -> float:
    """CPU µs of the budget step per call for a user with ``history`` records: reserve, settle to a record."""
    from openrouter_attribution import UserBudget
    from openrouter_attribution.usage import UsageRecord
    from openrouter_attribution.usage.budget_guard import BudgetGuard

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


def _cpu_per_call(model: Any, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        model.invoke(PROMPT, user="bench_e2e")
    return (time.process_time() - start) / calls * 1e6


def _locations(folder: Path, pg: Any) -> dict[str, str]:
    spots = {"sqlite": str(folder / "budget.db")}
    if pg is not None:
        spots["postgres"] = pg.create_database("budget_bench")
    return spots


def _paired(models: dict[str, tuple[Any, Any]], base: Any, rounds: int, block: int) -> dict[str, Any]:
    """Per store: CPU µs per call of no-budget blocks, of budget blocks, and their paired differences; and
    blocks of calls without any ledger (the call's own CPU)."""
    out: dict[str, Any] = {"none": [], **{name: {"ledger": [], "budget": [], "paired": []} for name in models}}
    for round_no in range(rounds):
        out["none"].append(_cpu_per_call(base, block))
        names = list(models)
        for name in names[round_no % len(names):] + names[: round_no % len(names)]:
            plain, budgeted = models[name]
            if round_no % 2:
                with_budget = _cpu_per_call(budgeted, block)
                without = _cpu_per_call(plain, block)
            else:
                without = _cpu_per_call(plain, block)
                with_budget = _cpu_per_call(budgeted, block)
            out[name]["ledger"].append(without)
            out[name]["budget"].append(with_budget)
            out[name]["paired"].append(with_budget - without)
    return out


def measure_budget(base_url: str, settings: Any, results: dict[str, Any]) -> None:
    """Fill ``results["budget"]``; a variant that cannot be measured raises (the run must fail)."""
    from openrouter_attribution import UsageLedger, UserBudget
    from openrouter_attribution.langchain import ChatOpenRouter
    from openrouter_attribution.usage import UsageRecord

    out: dict[str, Any] = {"variants": {}, "skipped": {}, "history": HISTORY}
    results["budget"] = out
    pg = measure.start_postgres(out["skipped"], 'postgres')
    folder = Path(tempfile.mkdtemp(prefix="budget-bench-"))
    rounds, block = (2, 10) if settings.smoke else (max(16, 6 * settings.rounds), 100)
    isolated_rounds, isolated_n = (1, 50) if settings.smoke else (5, 1000)
    try:
        spots = _locations(folder, pg)
        ledgers = {name: UsageLedger(location) for name, location in spots.items()}
        for ledger in ledgers.values():
            for history in HISTORIES:
                ledger.record_many([UsageRecord(user=f"bench_h{history}", cost=Decimal("0.0000054"))
                                    for _ in range(history)])  # fmt: skip
        budget = UserBudget(max_cost=Decimal(1000), reserve=Decimal("0.001"))  # the default lease
        common = {"model": MODEL, "base_url": base_url, "api_key": API_KEY}
        base = ChatOpenRouter(**common)
        models = {name: (ChatOpenRouter(**common, ledger=ledger),
                         ChatOpenRouter(**common, ledger=ledger, budget=budget)) for name, ledger in ledgers.items()}
        for model in (base, *(m for pair in models.values() for m in pair)):
            _cpu_per_call(model, 5 if settings.smoke else 50)  # warm up
        e2e = _paired(models, base, rounds, block)
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
        for name in spots:
            paired = e2e[name]["paired"]
            cost = measure.median(paired)
            low, high = measure.quartiles(paired)
            out["variants"][name] = {
                "label": LABELS[name], "budget_cpu_us": cost, "budget_cpu_us_quartiles": [low, high],
                "share": cost / call if call and cost is not None else None, "samples": len(paired),
                "e2e_ledger_us": measure.median(e2e[name]["ledger"]),
                "e2e_budget_us": measure.median(e2e[name]["budget"]),
                "steps_cpu_us": {str(h): measure.median(v) for h, v in steps[name].items()},
                "leased_step_cpu_us": measure.median(leased[name]),
            }  # fmt: skip
        for ledger in ledgers.values():
            ledger.close()
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
             "| store | budget CPU µs/call (end to end, paired; quartiles) | share of a call | call with ledger µs "
             "| with ledger + budget µs | step alone µs, leases | step alone µs, every call in the store: 0 / 50 / 500 "
             "records in the window |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for data in budget["variants"].values():
        share, quartiles = data.get("share"), data.get("budget_cpu_us_quartiles")
        cost = _fmt(data.get("budget_cpu_us"), 1)
        if quartiles:
            cost += f" ({_fmt(quartiles[0])} to {_fmt(quartiles[1])})"
        steps = data.get("steps_cpu_us", {})
        alone = " / ".join(_fmt(steps.get(str(h)), 1) for h in HISTORIES)
        cells = [data["label"], cost, f"{share:.2%}" if share is not None else "", _fmt(data.get("e2e_ledger_us")),
                 _fmt(data.get("e2e_budget_us")), _fmt(data.get("leased_step_cpu_us"), 1), alone]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    samples = max((v.get("samples") or 0 for v in budget["variants"].values()), default=0)
    if samples:
        lines.append(f"\nEnd to end: {samples} pairs of blocks per row (calls with the ledger and the budget next "
                     "to calls with the same ledger only). The step alone is the budget's own CPU in a tight loop "
                     "with warm caches: a lower bound.")  # fmt: skip
    for name, reason in budget.get("skipped", {}).items():
        lines.append(f"\n- {LABELS[name]} skipped: {reason}")
    return lines


def _fmt(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"
