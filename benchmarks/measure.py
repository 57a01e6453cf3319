"""Measurements. CPU is ``time.process_time()`` of this (client) process; the server runs elsewhere."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clients import PROMPT, Adapter, by_name
from server import DEFAULT_CHUNKS, ServerProcess

HERE = Path(__file__).resolve().parent

# Modules timed by `import_times`; `heavy` are the ones whose presence in sys.modules we report.
IMPORTS = (
    "openrouter_attribution",
    "openrouter_attribution.langchain",
    "openrouter_attribution.llama_index",
    "openai",
    "langchain_openai",
    "langchain_openrouter",
    "llama_index.llms.openrouter",
)
HEAVY = ("openai", "httpx2", "httpx", "langchain_core", "llama_index.core", "pydantic")


def quartiles(values: list[float]) -> tuple[float, float]:
    """First and third quartiles (the one value twice when there is one)."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def start_postgres(skipped: dict[str, str], key: str) -> Any:
    """A throwaway PostgreSQL server (fsync on), or ``None`` with the reason in ``skipped[key]``."""
    try:
        from openrouter_attribution.testing.postgres import PostgresServer, PostgresUnavailable
    except ImportError as err:
        skipped[key] = f"cannot import the PostgreSQL launcher: {err}"
        return None
    try:
        return PostgresServer(fsync=True).start()
    except PostgresUnavailable as err:
        skipped[key] = str(err)
        return None


def share_targets(
    variants: dict[str, Any], targets: dict[str, float], label: Callable[[str], str]
) -> list[dict[str, Any]]:
    """Verdicts for "``label(name)`` <= limit of a call's client CPU", from each variant's ``share``."""
    verdicts = []
    for name, limit in targets.items():
        share = variants.get(name, {}).get("share")
        verdicts.append({"target": f"{label(name)} <= {limit:.0%} of a call's client CPU",
                         "measured": f"{share:.2%}" if share is not None else "n/a",
                         "met": share <= limit if share is not None else None})  # fmt: skip
    return verdicts


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def cpu_per_call(adapter: Adapter, calls: int) -> float:
    """Client CPU (µs) per non-streamed sync call."""
    start = time.process_time()
    for _ in range(calls):
        adapter.call()
    return (time.process_time() - start) / calls * 1e6


def cpu_per_chunk(adapter: Adapter, streams: int) -> float:
    """Client CPU (µs) per streamed text chunk (whole streamed call / chunks received)."""
    chunks = 0
    start = time.process_time()
    for _ in range(streams):
        chunks += adapter.stream()
    return (time.process_time() - start) / chunks * 1e6


def opened_since(server: ServerProcess, before: dict[str, int]) -> int:
    """TCP connections the server accepted since ``before`` (the stats requests themselves excluded)."""
    return server.stats()["accepted"] - before["accepted"] - 1


def async_run(
    loop: asyncio.AbstractEventLoop, adapter: Adapter, server: ServerProcess, concurrency: int, per_worker: int
) -> dict[str, float]:
    """``concurrency`` tasks each making ``per_worker`` sequential async calls.

    Returns:
        ``calls_per_s`` (wall), ``cpu_us`` per call and ``new_connections`` opened during the run.
    """

    async def worker() -> None:
        for _ in range(per_worker):
            await adapter.acall()

    async def run() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    before = server.stats()
    wall, cpu = time.perf_counter(), time.process_time()
    loop.run_until_complete(run())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    calls = concurrency * per_worker
    return {"calls_per_s": calls / wall, "cpu_us": cpu / calls * 1e6, "new_connections": opened_since(server, before)}


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Shut a benchmark loop down as ``asyncio.run`` would, so clients bound to it close their pools."""
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def construction_us(adapter: Adapter, repeats: int) -> float:
    """Median wall µs to build another model with the same settings (one already exists)."""
    samples = []
    keep = []  # keep them alive: measuring construction, not destruction
    for _ in range(repeats):
        start = time.perf_counter_ns()
        keep.append(adapter.new())
        samples.append((time.perf_counter_ns() - start) / 1000)
    del keep
    gc.collect()
    return statistics.median(samples)


_IMPORT_SNIPPET = """
import json, sys, time
start = time.perf_counter()
try:
    import {module}
except Exception as err:
    print(json.dumps({{"error": f"{{type(err).__name__}}: {{err}}"}}))
else:
    elapsed = time.perf_counter() - start
    print(json.dumps({{"ms": elapsed * 1000, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def import_times(runs: int) -> dict[str, dict[str, Any]]:
    """Median wall ms of ``import <module>`` in a fresh interpreter, and which heavy modules it pulled in."""
    results: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[float]] = {module: [] for module in IMPORTS}
    for _ in range(runs):
        for module in IMPORTS:  # interleaved, like the clients
            if "error" in results.get(module, {}):
                continue
            code = _IMPORT_SNIPPET.format(module=module, heavy=HEAVY)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
            lines = out.stdout.strip().splitlines()
            if out.returncode != 0 or not lines:
                results[module] = {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:200]}
                continue
            answer = json.loads(lines[-1])
            if "error" in answer:
                results[module] = {"error": answer["error"][:200]}
                continue
            samples[module].append(answer["ms"])
            results[module] = {"loaded": answer["loaded"]}
    for module, values in samples.items():
        if values:
            results[module]["ms"] = statistics.median(values)
    return results


def connections_in_child(name: str, server: ServerProcess, calls: int) -> dict[str, Any]:
    """Run :func:`child_connections` for one client in a fresh interpreter (so pools start empty)."""
    command = [sys.executable, str(HERE / "run.py"), "--child-connections", name, "--port", str(server.port),
               "--calls", str(calls)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1])


def child_connections(name: str, port: int, calls: int) -> dict[str, Any]:
    """In a fresh interpreter: connections opened by ``calls`` sequential calls, streamed and not, and
    connections still open once the client is dropped and collected."""
    from clients import Skip, build

    server = ServerProcess()
    server.port = port
    initial = server.stats()
    try:
        adapter = build(by_name(name), server.base_url())
    except Skip as err:
        return {"error": str(err)}
    before = server.stats()
    for _ in range(calls):
        adapter.call()
    plain = opened_since(server, before)
    before = server.stats()
    for _ in range(calls):
        adapter.stream()
    streamed = opened_since(server, before)
    adapter.close()
    del adapter
    gc.collect()
    time.sleep(0.3)
    left = server.stats()["open"] - initial["open"]
    return {"per_calls": calls, "non_stream": plain, "stream": streamed, "left_open": left}


def timeit_us(func: Callable[[], object], repeats: int, number: int) -> float:
    """Median over ``repeats`` of the CPU µs of one ``func()`` call (each repeat runs it ``number`` times)."""
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(number):
            func()
        samples.append((time.process_time() - start) / number * 1e6)
    return statistics.median(samples)


def attribution_micro(base_url: str, repeats: int, number: int) -> dict[str, Any]:
    """CPU µs of the attribution step alone (run-config lookup, resolution, identity policy, body fields).

    Uses ``ChatOpenRouter._prepare`` (private) under the run-config context variable exactly as
    ``invoke`` sets it, so the numbers exclude HTTP and LangChain's run machinery.
    """
    try:
        from langchain_core.messages import HumanMessage
        from langchain_core.runnables.config import ensure_config

        from openrouter_attribution.langchain.config import RUN_CONFIG
    except ImportError as err:
        return {"error": f"cannot import: {err}"}
    from clients import ATTRIBUTION_VARIANTS, Skip

    out: dict[str, Any] = {}
    messages = [HumanMessage("hi")]
    models: dict[str, Any] = {}
    for spec in ATTRIBUTION_VARIANTS:
        try:
            models[spec.name] = spec.factory(base_url)  # built only, never called
        except Skip as err:
            out[f"{spec.name}_skipped"] = str(err)

    def prepare(model: Any, config: Any) -> Callable[[], object]:
        config = ensure_config(config)
        # `_prepare` is private and its signature moves; pass `run_manager` only where it is taken.
        extra = {"run_manager": None} if "run_manager" in inspect.signature(model._prepare).parameters else {}

        def run() -> object:
            token = RUN_CONFIG.set(config)
            try:
                return model._prepare(messages, None, {}, stream=False, **extra)
            finally:
                RUN_CONFIG.reset(token)

        return run

    try:
        for name, adapter in models.items():
            model = getattr(adapter, "model", None)
            out[name] = timeit_us(prepare(model, adapter.config), repeats, number)
    except Exception as err:  # private API drift must not break the benchmark
        return {"error": f"{type(err).__name__}: {err}"}
    policy = getattr(models.get("config-user+policy"), "_policy", None)
    if policy is not None:
        counter = iter(range(10**9))
        out["policy_apply_uncached"] = timeit_us(lambda: policy.apply(f"user-{next(counter)}"), repeats, number)
        out["policy_apply_cached"] = timeit_us(lambda: policy.apply("42"), repeats, number)
    return out


def conversation_cpu(adapter: Adapter, messages: Any, calls: int) -> float:
    """Client CPU (µs) per non-streamed sync call sending the conversation ``messages``."""
    start = time.process_time()
    for _ in range(calls):
        adapter.call_history(messages)
    return (time.process_time() - start) / calls * 1e6


__all__ = [
    "DEFAULT_CHUNKS",
    "async_run",
    "attribution_micro",
    "child_connections",
    "connections_in_child",
    "construction_us",
    "conversation_cpu",
    "cpu_per_call",
    "cpu_per_chunk",
    "import_times",
    "median",
]


def writer_clock(ledger: Any) -> int | None:
    """The CPU clock of a ledger's writer thread; ``None`` for anything that is not a ``UsageLedger``.

    Private API (``UsageLedger._writer``): if it moves, this raises and the run fails."""
    from openrouter_attribution.usage import UsageLedger

    if not isinstance(ledger, UsageLedger):
        return None
    return time.pthread_getcpuclockid(ledger._writer._thread.ident)  # type: ignore[arg-type]


def block_cpu(model: Any, calls: int, **kwargs: Any) -> tuple[float, float]:
    """CPU µs per call of ``calls`` sync ``model.invoke`` calls: of the calling thread, and of the whole
    process (every thread)."""
    thread, process = time.thread_time(), time.process_time()
    for _ in range(calls):
        model.invoke(PROMPT, **kwargs)
    return (time.thread_time() - thread) / calls * 1e6, (time.process_time() - process) / calls * 1e6
