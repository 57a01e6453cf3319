"""The usage ledger's cost: client CPU per call as a share of a call, and records per second from 4 processes.

Variants: no ledger, SQLite durable, SQLite buffered, PostgreSQL durable (a throwaway server started here,
fsync on; skipped with its reason when the machine has no PostgreSQL binaries), and two references that
use no ledger (the SQLite INSERT alone; a SELECT 1 round trip to the same PostgreSQL server).

- ``share`` (judged): the ledger's CPU per call, measured end to end and split by thread, divided by
  the client CPU of a call without a ledger (``time.process_time()``, every thread):

  - the caller's part: our LangChain model's sync calls with the ledger minus the same calls without
    one, CPU of the calling thread (``time.thread_time()``), in blocks of ``BLOCK`` calls that alternate
    (each ledger block is paired with a no-ledger block run right next to it; the median of the paired
    differences over many pairs). Everything a call does for its record happens here: building it,
    queueing it, the journal copy, a commit on the caller's thread (the references).
  - the writer thread's part: all the CPU the ledger's own thread used from the first block to the
    flush after the last (its clock, ``time.pthread_getcpuclockid``), per call recorded: the commits
    of every record, in the batches the ledger makes at this rate of calls, and its periodic work.

  Short blocks keep the machine's drift (this machine's speed wanders by 10 to 30% over seconds) out
  of the paired differences; the writer thread's clock counts its commits whole, whenever they run.
  What this split leaves out is how much a commit on the writer thread slows calls running on the
  other core at the same moment: that falls on ledger and no-ledger blocks alike, half of it counted.
- ``ledger code alone``: building and recording records in a tight loop, one call at a time (the
  ledger's own CPU with warm caches; a lower bound, shown for comparison).
- ``records/s``: 4 processes x 8 threads recording durable records as fast as they can (wall clock).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import measure
from clients import API_KEY, MODEL, PROMPT

TARGETS = {"sqlite-durable": 0.05, "sqlite-buffered": 0.02, "postgres-durable": 0.10}
LABELS = {"none": "no ledger", "sqlite-durable": "SQLite, durable", "sqlite-buffered": "SQLite, buffered",
          "postgres-durable": "PostgreSQL, durable", "sqlite-insert": "reference, no ledger: the SQLite INSERT alone",
          "postgres-round-trip": "reference, no ledger: a PostgreSQL round trip alone"}  # fmt: skip
PROCESSES, THREADS = 4, 8
BLOCK = 20
"""Calls per block: ledger and no-ledger blocks alternate this often (about 20 ms)."""
ROUND_PAIRS = 50
"""Pairs of blocks a ledger gets in each round: 1,000 calls with it, about two seconds, four flush
intervals of a buffered ledger and two commit intervals of a durable one. The flush that ends a round
adds a commit to those the ledger makes at this rate of calls; longer rounds make it a smaller part."""


class _InsertAlone:
    """Reference, not a ledger: each call's record inserted by the SQLite store directly (one autocommit
    INSERT), without the ledger's code. What a durable SQLite commit costs a call by itself."""

    def __init__(self, path: str) -> None:
        from openrouter_attribution.usage import SQLiteUsageStore

        self.store = SQLiteUsageStore(path)

    def record(self, rec: Any) -> None:
        self.store.write_within([rec], 1.0)  # the commit of durability="committed": into the inbox

    def flush(self) -> None:
        """Nothing queued."""

    def close(self) -> None:
        self.store.close()


class _RoundTripAlone:
    """Reference, not a ledger: one ``SELECT 1`` round trip per call to the benchmark's PostgreSQL server,
    through libpq directly. The floor of anything that waits for that server before a call returns."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)

    def record(self, rec: Any) -> None:
        if self.conn.pgconn.exec_(b"SELECT 1").status != 2:  # TUPLES_OK
            raise RuntimeError("SELECT 1 failed")

    def flush(self) -> None:
        """Nothing queued."""

    def close(self) -> None:
        self.conn.close()


def _locations(folder: Path, pg: Any) -> dict[str, tuple[str, str] | None]:
    spots: dict[str, tuple[str, str] | None] = {
        "none": None,
        "sqlite-durable": (str(folder / "durable.db"), "durable"),
        "sqlite-buffered": (str(folder / "buffered.db"), "buffered"),
    }
    if pg is not None:
        spots["postgres-durable"] = (pg.create_database("bench"), "durable")
    return spots


def _record_loop(ledger: Any, n: int) -> float:
    """CPU µs per call of the ledger's part of a call: build the record, record it (commit included)."""
    from openrouter_attribution.attribution import Attribution
    from openrouter_attribution.usage.call_records import record_call

    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "user": "app_1"}
    attribution = Attribution(user="app_1")
    usage = SimpleNamespace(
        prompt_tokens=9, completion_tokens=9, cached_tokens=0, reasoning_tokens=0, cost=Decimal("0.0000054")
    )
    completion = SimpleNamespace(id="", model=MODEL, provider="OpenAI", usage=usage)  # what parse_completion gives
    start = time.process_time()
    for i in range(n):
        completion.id = f"gen-bench-{time.time_ns()}-{i}"
        record_call(ledger, body=body, attribution=attribution, started=time.perf_counter(), first=None,
                    source=completion, error=None, framework="langchain")  # fmt: skip
    ledger.flush()
    return (time.process_time() - start) / n * 1e6


def _worker(location: str, per_thread: int, barrier: Any) -> None:
    from openrouter_attribution.usage import UsageLedger, UsageRecord

    with UsageLedger(location) as ledger:
        barrier.wait(60)

        def work(t: int) -> None:
            for i in range(per_thread):
                ledger.record(UsageRecord(user=f"u{i % 9}", cost="0.0000012", prompt_tokens=9))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _throughput(location: str, per_thread: int) -> float:
    from openrouter_attribution.usage import UsageLedger

    UsageLedger(location).close()  # schema first
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    procs = [ctx.Process(target=_worker, args=(location, per_thread, barrier)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    barrier.wait(120)
    start = time.perf_counter()
    for p in procs:
        p.join(600)
    wall = time.perf_counter() - start
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a writer process failed: exit codes {[p.exitcode for p in procs]}")
    return PROCESSES * THREADS * per_thread / wall


def measure_ledger(base_url: str, settings: Any, results: dict[str, Any]) -> None:
    """Fill ``results["ledger"]``; a variant that cannot be measured raises (the run must fail)."""
    from openrouter_attribution.langchain import ChatOpenRouter
    from openrouter_attribution.usage import UsageLedger

    out: dict[str, Any] = {"variants": {}, "skipped": {}}
    results["ledger"] = out
    pg = measure.start_postgres(out["skipped"], "postgres-durable")
    folder = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    rounds, pairs, block = (2, 2, 5) if settings.smoke else (max(8, 3 * settings.rounds), ROUND_PAIRS, BLOCK)
    isolated_n = 50 if settings.smoke else 2000
    per_thread = 5 if settings.smoke else 250
    try:
        spots = _locations(folder, pg)
        ledgers: dict[str, Any] = {name: UsageLedger(spot[0], durability=spot[1])  # type: ignore[arg-type]
                                   for name, spot in spots.items() if spot}  # fmt: skip
        ledgers["sqlite-insert"] = _InsertAlone(str(folder / "insert-alone.db"))
        if pg is not None:
            ledgers["postgres-round-trip"] = _RoundTripAlone(pg.dsn())
        models = {name: ChatOpenRouter(model=MODEL, base_url=base_url, api_key=API_KEY, ledger=ledgers.get(name))
                  for name in ("none", *ledgers)}  # fmt: skip
        for name, model in models.items():
            _cpu_per_call(model, ledgers.get(name), 5 if settings.smoke else 50)  # warm up
        base, e2e, caller, writer = _paired_blocks(models, ledgers, rounds, pairs, block)
        iso = {name: [_record_loop(ledger, isolated_n) for _ in range(3)] for name, ledger in ledgers.items()}
        call = measure.median(base)
        out["variants"]["none"] = {"label": LABELS["none"], "e2e_cpu_us": call, "samples": len(base)}
        out["block"] = block
        for name in ledgers:
            caller_cost = measure.median(caller[name])
            cost = None if caller_cost is None else caller_cost + writer[name]
            low, high = measure.quartiles(caller[name])
            out["variants"][name] = {
                "label": LABELS[name], "e2e_cpu_us": measure.median(e2e[name]), "ledger_cpu_us": cost,
                "caller_cpu_us": caller_cost, "caller_cpu_us_quartiles": [low, high], "writer_cpu_us": writer[name],
                "isolated_cpu_us": measure.median(iso[name]),
                "share": cost / call if call and cost is not None else None, "samples": len(caller[name]),
            }  # fmt: skip
        for ledger in ledgers.values():
            ledger.close()
        for name, spot in spots.items():
            if spot is not None and spot[1] == "durable":
                target = spot[0] if name.startswith("postgres") else str(folder / f"tp-{name}.db")
                out["variants"][name]["records_per_s"] = _throughput(target, per_thread)
    finally:
        if pg is not None:
            pg.stop()


def _paired_blocks(
    models: dict[str, Any], ledgers: dict[str, Any], rounds: int, pairs: int, block: int
) -> tuple[list[float], dict[str, list[float]], dict[str, list[float]], dict[str, float]]:
    """Client CPU µs per call of no-ledger blocks; per ledger, the CPU per call of its blocks (whole
    process), the paired differences of the calling thread's CPU, and its writer thread's CPU per call.

    Each round gives every ledger in turn (another one first each round) ``pairs`` pairs of blocks,
    about two seconds of calls, then flushes it: its writer thread commits the batches it makes at this
    rate of calls, and its clock is read around exactly that. In a pair the ledger block runs right
    next to a no-ledger block (before it in even pairs, after it in odd ones), so drift of the machine
    and any order effect hit both sides alike.
    """
    base: list[float] = []
    e2e: dict[str, list[float]] = {name: [] for name in ledgers}
    caller: dict[str, list[float]] = {name: [] for name in ledgers}
    spent = dict.fromkeys(ledgers, 0.0)
    clocks = {name: measure.writer_clock(ledger) for name, ledger in ledgers.items()}
    for ledger in ledgers.values():
        ledger.flush()  # the warm-up's records are not the blocks'
    for round_no in range(rounds):
        names = list(ledgers)
        names = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in names:
            clock = clocks[name]
            before = 0.0 if clock is None else time.clock_gettime(clock)
            for pair in range(pairs):
                if pair % 2:
                    with_ledger = measure.block_cpu(models[name], block)
                    without = measure.block_cpu(models["none"], block)
                else:
                    without = measure.block_cpu(models["none"], block)
                    with_ledger = measure.block_cpu(models[name], block)
                base.append(without[1])
                e2e[name].append(with_ledger[1])
                caller[name].append(with_ledger[0] - without[0])
            ledgers[name].flush()  # what the blocks recorded is committed: its commits count
            if clock is not None:
                spent[name] += time.clock_gettime(clock) - before
    writer = {name: cpu / (rounds * pairs * block) * 1e6 for name, cpu in spent.items()}
    return base, e2e, caller, writer


def _cpu_per_call(model: Any, ledger: Any, calls: int) -> float:
    """Client CPU µs per call (warm-up); the ledger is flushed inside the measurement."""
    start = time.process_time()
    for _ in range(calls):
        model.invoke(PROMPT)
    if ledger is not None:
        ledger.flush()
    return (time.process_time() - start) / calls * 1e6


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Target verdicts for the ledger."""
    variants = results.get("ledger", {}).get("variants", {})
    return measure.share_targets(variants, TARGETS, lambda name: f"ledger {LABELS[name]}")


def markdown_lines(results: dict[str, Any]) -> list[str]:
    """The report section."""
    ledger = results.get("ledger")
    if not ledger:
        return []
    lines = ["", "## Cost of the usage ledger (our LangChain model, sync calls)", "",
             "| ledger | call CPU µs | ledger CPU µs/call | caller's thread µs/call (paired; quartiles) | writer "
             "thread µs/call | share of a call | ledger code alone µs/call | records/s, 4 processes x 8 threads |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for data in ledger["variants"].values():
        share = data.get("share")
        quartiles = data.get("caller_cpu_us_quartiles")
        caller = _fmt(data.get("caller_cpu_us"), 1)
        if quartiles:
            caller += f" ({_fmt(quartiles[0], 0)} to {_fmt(quartiles[1], 0)})"
        cells = [data["label"], _fmt(data.get("e2e_cpu_us")), _fmt(data.get("ledger_cpu_us"), 1), caller,
                 _fmt(data.get("writer_cpu_us"), 1), f"{share:.2%}" if share is not None else "",
                 _fmt(data.get("isolated_cpu_us"), 1), _fmt(data.get("records_per_s"))]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    samples = max((v.get("samples") or 0 for k, v in ledger["variants"].items() if k != "none"), default=0)
    if samples:
        lines.append(f"\nEnd to end: {samples} pairs of blocks of {ledger.get('block')} calls per row (a ledger block "
                     "next to a no-ledger block); the caller's thread is the median of their paired differences, the "
                     "writer thread all its CPU over the blocks (flushed after the last) per call; the ledger's cost "
                     "is their sum. The call CPU column is the median of the blocks' CPU per call, every thread's. The "
                     "reference rows use no ledger: per call, the model builds the record as with a ledger, then the "
                     "SQLite store inserts it directly (one autocommit INSERT), or one SELECT 1 goes to the same "
                     "PostgreSQL server and back.")  # fmt: skip
    for name, reason in ledger.get("skipped", {}).items():
        lines.append(f"\n- {LABELS[name]} skipped: {reason}")
    return lines


def _fmt(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"
