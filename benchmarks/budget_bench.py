"""The budget step's cost: client CPU per call as a share of a call, on SQLite and PostgreSQL.

- ``share``: the budget step alone (reserve: one atomic check-and-insert in the store; settle: the
  reservation released once its record is stored), measured in isolation one call at a time, divided by
  the client CPU of our LangChain model's sync call without ledger or budget, measured in the same run
  (the strict reading; the share of the same call with its durable ledger, which a budget always comes
  with, is shown beside it). The reserve step sums the user's records in the window, so the step is
  measured for users with 0, ``HISTORY`` and 500 records; the target is judged at ``HISTORY``.
- ``end to end``: the model's sync call CPU with a durable ledger, without and with a budget, and the
  difference (noisy: shown, not judged). It is several times the isolated step: between two calls the
  HTTP request evicts the CPU caches, and every SQLite or psycopg statement then runs cold (about 4x
  slower than in a tight loop; the ledger's own isolated and end-to-end numbers show the same gap).

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

TARGETS = {"sqlite": 0.03}
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
HISTORY = 50
"""Records the budgeted user already has in the window, for the judged measurement."""
HISTORIES = (0, HISTORY, 500)


def _isolated(ledger: Any, n: int, tag: str, history: int) -> float:
    """CPU µs of the budget step per call for a user with ``history`` records: reserve, settle to a record."""
    from openrouter_attribution import UserBudget
    from openrouter_attribution.usage import UsageRecord
    from openrouter_attribution.usage.budget_guard import BudgetGuard

    guard = BudgetGuard(UserBudget(max_cost=Decimal(1000), reserve=Decimal("0.001")), ledger)
    records = [UsageRecord(user="bench_done", cost=Decimal("0.0000054"), record_id=f"{tag}-h{history}-{i}")
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


def measure_budget(base_url: str, settings: Any, results: dict[str, Any]) -> None:
    """Fill ``results["budget"]``; a variant that cannot be measured raises (the run must fail)."""
    from openrouter_attribution import UsageLedger, UserBudget
    from openrouter_attribution.langchain import ChatOpenRouter
    from openrouter_attribution.usage import UsageRecord

    out: dict[str, Any] = {"variants": {}, "skipped": {}, "history": HISTORY}
    results["budget"] = out
    pg = _start_postgres(out)
    folder = Path(tempfile.mkdtemp(prefix="budget-bench-"))
    rounds, calls = (1, 20) if settings.smoke else (settings.rounds, 300)
    isolated_n = 50 if settings.smoke else 1000
    try:
        spots = _locations(folder, pg)
        ledgers = {name: UsageLedger(location) for name, location in spots.items()}
        for ledger in ledgers.values():
            for history in HISTORIES:
                ledger.record_many([UsageRecord(user=f"bench_h{history}", cost=Decimal("0.0000054"))
                                    for _ in range(history)])  # fmt: skip
        budget = UserBudget(max_cost=Decimal(1000), reserve=Decimal("0.001"))
        common = {"model": MODEL, "base_url": base_url, "api_key": API_KEY}
        base = ChatOpenRouter(**common)
        models = {name: (ChatOpenRouter(**common, ledger=ledger),
                         ChatOpenRouter(**common, ledger=ledger, budget=budget)) for name, ledger in ledgers.items()}
        for model in (base, *(m for pair in models.values() for m in pair)):
            model.invoke(PROMPT, user="bench_e2e")  # warm up
        base_cpu: list[float] = []
        samples: dict[str, dict[str, list[float]]] = {
            name: {"ledger": [], "budget": [], **{f"step{h}": [] for h in HISTORIES}} for name in spots}
        for round_no in range(rounds):
            base_cpu.append(_cpu_per_call(base, calls))
            names = list(spots)
            for name in names[round_no % len(names):] + names[: round_no % len(names)]:
                plain, budgeted = models[name]
                samples[name]["ledger"].append(_cpu_per_call(plain, calls))
                samples[name]["budget"].append(_cpu_per_call(budgeted, calls))
                shift = round_no % len(HISTORIES)  # each round another order: WAL checkpoints hit each alike
                for history in HISTORIES[shift:] + HISTORIES[:shift]:
                    step = _isolated(ledgers[name], isolated_n, f"r{round_no}", history)
                    samples[name][f"step{history}"].append(step)
        call = measure.median(base_cpu)
        out["call_cpu_us"] = call
        for name in spots:
            steps = {h: measure.median(samples[name][f"step{h}"]) for h in HISTORIES}
            with_ledger = measure.median(samples[name]["ledger"])
            judged = steps[HISTORY]
            out["variants"][name] = {
                "label": LABELS[name],
                "step_cpu_us": judged,
                "steps_cpu_us": {str(h): v for h, v in steps.items()},
                "step_samples_us": {str(h): samples[name][f"step{h}"] for h in HISTORIES},
                "step_all_median_us": measure.median([v for h in HISTORIES for v in samples[name][f"step{h}"]]),
                "share": judged / call if call and judged is not None else None,
                "share_of_ledger_call": judged / with_ledger if with_ledger and judged is not None else None,
                "e2e_ledger_us": with_ledger,
                "e2e_budget_us": measure.median(samples[name]["budget"]),
            }
        for ledger in ledgers.values():
            ledger.close()
    finally:
        if pg is not None:
            pg.stop()


def _start_postgres(out: dict[str, Any]) -> Any:
    try:
        from openrouter_attribution.testing.postgres import PostgresServer, PostgresUnavailable
    except ImportError as err:
        out["skipped"]["postgres"] = f"cannot import the PostgreSQL launcher: {err}"
        return None
    try:
        return PostgresServer(fsync=True).start()
    except PostgresUnavailable as err:
        out["skipped"]["postgres"] = str(err)
        return None


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Target verdicts for the budget step (PostgreSQL is reported, not judged)."""
    variants = results.get("budget", {}).get("variants", {})
    targets = []
    for name, limit in TARGETS.items():
        share = variants.get(name, {}).get("share")
        targets.append({"target": f"budget step on {LABELS[name]} <= {limit:.0%} of a call's client CPU",
                        "measured": f"{share:.2%}" if share is not None else "n/a",
                        "met": share <= limit if share is not None else None})  # fmt: skip
    return targets


def markdown_lines(results: dict[str, Any]) -> list[str]:
    """The report section."""
    budget = results.get("budget")
    if not budget:
        return []
    lines = ["", "## Cost of a per-user budget (our LangChain model, sync calls)", "",
             f"A call without ledger or budget: {_fmt(budget.get('call_cpu_us'))} µs client CPU. The budget step "
             "(reserve + settle), measured in isolation, for a user with 0, 50 and 500 records in the window; "
             f"shares for {budget['history']} records.", "",
             "| store | step µs, 0 records | step µs, 50 | step µs, 500 | share of a call | share of the call "
             "with its ledger | call with ledger µs (e2e) | with ledger + budget µs (e2e) | e2e difference µs "
             "(noisy) |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for data in budget["variants"].values():
        steps = data.get("steps_cpu_us", {})
        share, of_ledger = data.get("share"), data.get("share_of_ledger_call")
        cells = [data["label"], *(_fmt(steps.get(str(h)), 1) for h in HISTORIES),
                 f"{share:.2%}" if share is not None else "", f"{of_ledger:.2%}" if of_ledger is not None else "",
                 _fmt(data.get("e2e_ledger_us")), _fmt(data.get("e2e_budget_us")),
                 _fmt(_delta(data.get("e2e_budget_us"), data.get("e2e_ledger_us")))]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("\nThe end-to-end difference is larger than the isolated step: after each HTTP call the step's "
                 "database statements run with cold CPU caches (see the module docstring).")
    for name, reason in budget.get("skipped", {}).items():
        lines.append(f"\n- {LABELS[name]} skipped: {reason}")
    return lines


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _fmt(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"
