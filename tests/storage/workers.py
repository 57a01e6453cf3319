"""Code the storage tests run in other processes (spawned, or ``python -m tests.storage.workers``)."""

from __future__ import annotations

import os
import signal
import sys
import threading

from openrouter_attribution.usage import UsageLedger, UsageRecord

THREADS = 8


def thread_records(proc: int, thread: int, n: int) -> list[UsageRecord]:
    return [UsageRecord(user=f"u{i % 7}", cost="0.000000123", prompt_tokens=1, record_id=f"p{proc}-t{thread}-{i:04d}")
            for i in range(n)]  # fmt: skip


def per_thread(proc: int) -> int:
    """4 processes x 8 threads write 5,000 records: process 0's threads 157 each, the others' 156."""
    return 157 if proc == 0 else 156


def write_from_threads(location: str, proc: int, barrier: object) -> None:
    """One process of the concurrency test: 8 threads, each record written once more (must not duplicate)."""
    barrier.wait(60)  # type: ignore[attr-defined]
    with UsageLedger(location) as ledger:

        def work(thread: int) -> None:
            recs = thread_records(proc, thread, per_thread(proc))
            for rec in recs:
                ledger.record(rec)
            for rec in recs[:5]:
                ledger.record(rec)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if ledger.errors or ledger.dropped:
        raise SystemExit(f"process {proc}: errors={ledger.errors} dropped={ledger.dropped}")


def calls_then_signal(
    location: str, sig: str, base_url: str, api_key: str, calls: int, commit_interval: float = 1.0
) -> None:
    """Make ``calls`` model calls with ``ledger=``, then receive ``sig`` right after the last one returned
    (a long ``commit_interval`` leaves every record in the journal)."""
    from openrouter_attribution.langchain import ChatOpenRouter

    ledger = UsageLedger(location, commit_interval=commit_interval)
    model = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=base_url, api_key=api_key, max_retries=0, ledger=ledger)
    for i in range(calls):
        model.invoke(f"question {i}", user=f"app_{i % 5}")
    print("returned", calls, flush=True)
    os.kill(os.getpid(), getattr(signal, sig))
    threading.Event().wait(30)  # never reached for SIGKILL / default SIGTERM


def budgeted_calls(
    location: str,
    base_url: str,
    api_key: str,
    limit: str,
    reserve: str,
    style: str,
    calls: int,
    barrier: object,
    results: object,
    lease: int = 16,
) -> None:
    """One process of the budget race: ``calls`` concurrent calls for one user; reports (sent, refused)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    from decimal import Decimal

    from openrouter_attribution import BudgetExceededError, UserBudget

    # Leases of one size: the callers' bounds on early refusals count in leases of ``lease`` calls.
    budget = UserBudget(max_cost=Decimal(limit), reserve=Decimal(reserve), lease=lease, max_lease=lease)
    with UsageLedger(location) as ledger:
        if style == "langchain-async":
            from openrouter_attribution.langchain import ChatOpenRouter

            model = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=base_url, api_key=api_key, max_retries=0,
                                   ledger=ledger, budget=budget)  # fmt: skip

            async def one() -> bool:
                try:
                    await model.ainvoke("the same question", user="app_budgeted")
                except BudgetExceededError:
                    return False
                return True

            async def all_at_once() -> list[bool]:
                return await asyncio.gather(*(one() for _ in range(calls)))

            barrier.wait(60)  # type: ignore[attr-defined]
            outcomes = asyncio.run(all_at_once())
        else:
            from llama_index.core.llms import ChatMessage

            from openrouter_attribution.llama_index import OpenRouter

            llm = OpenRouter(model="openai/gpt-4o-mini", api_base=base_url, api_key=api_key, max_retries=0,
                             ledger=ledger, budget=budget)  # fmt: skip

            def sync_one(_: int) -> bool:
                try:
                    llm.chat([ChatMessage(role="user", content="the same question")], user="app_budgeted")
                except BudgetExceededError:
                    return False
                return True

            barrier.wait(60)  # type: ignore[attr-defined]
            with ThreadPoolExecutor(calls) as pool:
                outcomes = list(pool.map(sync_one, range(calls)))
    results.put((sum(outcomes), calls - sum(outcomes)))  # type: ignore[attr-defined]


def alerted_calls(location: str, base_url: str, api_key: str, calls: int, limit: int, alerts_file: str,
                  barrier: object) -> None:  # fmt: skip
    """One process of the alert race: ``calls`` calls of one user under ``max_requests=limit`` with an alert
    at 80% that appends a line to ``alerts_file``; waits for its alert checks before exiting."""
    from openrouter_attribution import UserBudget
    from openrouter_attribution.langchain import ChatOpenRouter
    from openrouter_attribution.usage.budgets.alerts import BudgetAlert, wait_for_alerts

    def append(alert: BudgetAlert) -> None:
        with open(alerts_file, "a") as out:
            out.write(f"{os.getpid()} {alert.key} {alert.kind} {alert.fraction} {alert.spent}\n")

    budget = UserBudget(max_requests=limit, alerts=(0.8,), on_alert=append)
    with UsageLedger(location) as ledger:
        model = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=base_url, api_key=api_key, max_retries=0,
                               ledger=ledger, budget=budget)  # fmt: skip
        barrier.wait(120)  # type: ignore[attr-defined]
        for _ in range(calls):
            model.invoke("the same question", user="app_alerted")
        assert wait_for_alerts(60)


def tenant_calls(location: str, base_url: str, api_key: str, proc: int, calls: int, limit: int, barrier: object,
                 results: object) -> None:  # fmt: skip
    """One process of the tenant race: ``calls`` concurrent calls of three users of tenant ``acme`` under a
    tenant budget of ``limit`` requests; reports each call's outcome."""
    from concurrent.futures import ThreadPoolExecutor

    from openrouter_attribution import BudgetExceededError, UserBudget, user_context
    from openrouter_attribution.langchain import ChatOpenRouter

    # Leases of 16 calls need room for 32: near a limit of 10 every call reserves alone, exactly.
    budget = UserBudget(scope="metadata.tenant", max_requests=limit, lease=16, max_lease=16)
    with UsageLedger(location) as ledger:
        model = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=base_url, api_key=api_key, max_retries=0,
                               ledger=ledger, budget=budget)  # fmt: skip

        def one(i: int) -> str:
            with user_context(user=f"app_member_{(proc + i) % 3}", metadata={"tenant": "acme"}):
                try:
                    model.invoke("the same question")
                except BudgetExceededError as err:
                    return f"refused by {err.scope} {err.key}"
            return "sent"

        # LangChain caches a model's serialized form (a cached_property) on its first call; on Python 3.12+
        # threads making that first call at once can race in it (RuntimeError: dictionary changed size
        # during iteration, inside langchain-core). Computed once here, before the threads start.
        _ = model._serialized
        barrier.wait(120)  # type: ignore[attr-defined]
        with ThreadPoolExecutor(calls) as pool:
            outcomes = list(pool.map(one, range(calls)))
    results.put(outcomes)  # type: ignore[attr-defined]


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "calls":
        calls_then_signal(args[0], args[1], args[2], args[3], int(args[4]), *map(float, args[5:6]))
