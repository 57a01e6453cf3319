"""Benchmark openrouter-attribution against the raw openai SDK, bare HTTP and other integrations.

Usage: ``python benchmarks/run.py [--smoke] [--rounds N] [--out DIR] [--no-profile]``.
See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import budget_bench  # noqa: E402
import dashboard_bench  # noqa: E402
import embeddings  # noqa: E402
import ledger_bench  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import rerank_bench  # noqa: E402
import responses_bench  # noqa: E402
from clients import (  # noqa: E402
    ATTRIBUTION_VARIANTS,
    CLIENTS,
    CONVERSATION_CLIENTS,
    CONVERSATION_LENGTHS,
    REFERENCE,
    Adapter,
    MeasurementError,
    Skip,
    build,
    by_name,
)
from server import DEFAULT_CHUNKS, ServerProcess  # noqa: E402

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    smoke: bool
    rounds: int
    concurrency: tuple[int, ...]
    delay_ms: int
    chunks: int
    target_s: float
    """Rough CPU seconds per client per measurement and round (the call counts are calibrated to it)."""
    max_per_worker: int
    construct_repeats: int
    connection_calls: int
    import_runs: int
    profile_calls: int

    @classmethod
    def make(cls, smoke: bool, rounds: int | None) -> Settings:
        if smoke:
            return cls(smoke=True, rounds=rounds or 1, concurrency=(5, 20), delay_ms=20, chunks=DEFAULT_CHUNKS,
                       target_s=0.01, max_per_worker=1, construct_repeats=5, connection_calls=5, import_runs=1,
                       profile_calls=5)  # fmt: skip
        return cls(smoke=False, rounds=rounds or 5, concurrency=(50, 500), delay_ms=20, chunks=DEFAULT_CHUNKS,
                   target_s=0.15, max_per_worker=10, construct_repeats=200, connection_calls=100, import_runs=3,
                   profile_calls=1000)  # fmt: skip


_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


class Plan:
    """Adapters and calibrated call counts for one client."""

    def __init__(self, sync: Adapter, delayed: Adapter | None, settings: Settings) -> None:
        self.sync = sync
        self.delayed = delayed
        warm = measure.cpu_per_call(sync, 5 if settings.smoke else 20)  # warm-up and calibration
        chunk = measure.cpu_per_chunk(sync, 1 if settings.smoke else 3)
        self.calls = _clamp(settings.target_s / (warm / 1e6), 3, 3000)
        self.streams = _clamp(settings.target_s / (chunk * settings.chunks / 1e6), 1, 300)
        self.per_worker = {
            level: _clamp(settings.target_s * 4 / (warm * 1.3 / 1e6) / level, 1, settings.max_per_worker)
            for level in settings.concurrency
        }
        # Clients an order of magnitude slower than the SDK get their (long) async runs every other round.
        self.heavy = warm > 5000


def measure_clients(server: ServerProcess, settings: Settings, results: dict[str, Any]) -> None:
    loop = asyncio.new_event_loop()
    plans: dict[str, Plan] = {}
    clients = results["clients"]
    for spec in CLIENTS:
        clients[spec.name] = {"label": spec.label, "skipped": None}
        try:
            sync = build(spec, server.base_url())
            delayed = build(spec, server.base_url(delay_ms=settings.delay_ms))
        except Skip as err:
            clients[spec.name]["skipped"] = str(err)
            log(f"skip {spec.name}: {err}")
            continue
        except MeasurementError as err:
            clients[spec.name]["skipped"] = clients[spec.name]["failed"] = str(err)
            log(f"FAILED {spec.name}: {err}")
            continue
        clients[spec.name]["label"] = sync.label or spec.label
        plans[spec.name] = plan = Plan(sync, delayed, settings)
        for level in settings.concurrency:  # warm the async pools (and measure nothing)
            measure.async_run(loop, delayed, server, level, 1)
        log(f"ready {spec.name}: {plan.calls} calls, {plan.streams} streams, per worker {plan.per_worker}")
    variants: dict[str, Plan] = {}
    for spec in ATTRIBUTION_VARIANTS:
        try:
            variants[spec.name] = Plan(build(spec, server.base_url()), None, settings)
        except (Skip, MeasurementError) as err:
            results["attribution"].setdefault("failed", {})[spec.name] = str(err)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in (*plans, *variants)}

    def add(name: str, key: str, value: float) -> None:
        samples[name].setdefault(key, []).append(value)

    for round_no in range(settings.rounds):
        names = list(plans)
        shift = round_no % max(1, len(names))
        for name in names[shift:] + names[:shift]:  # round-robin: each round starts with another client
            plan = plans[name]
            add(name, "sync_cpu_us", measure.cpu_per_call(plan.sync, plan.calls))
            add(name, "chunk_cpu_us", measure.cpu_per_chunk(plan.sync, plan.streams))
            assert plan.delayed is not None
            if plan.heavy and round_no % 2:
                continue
            # Refill the async pool first: httpx drops connections idle for 5 s, and the other clients' turns
            # take longer than that. The timed runs then show what each client reuses and what it opens.
            measure.async_run(loop, plan.delayed, server, settings.concurrency[0], 1)
            for level in settings.concurrency:
                run = measure.async_run(loop, plan.delayed, server, level, plan.per_worker[level])
                for key, value in run.items():
                    add(name, f"async.{level}.{key}", value)
        vnames = list(variants)
        vshift = round_no % max(1, len(vnames))
        for name in vnames[vshift:] + vnames[:vshift]:
            add(name, "sync_cpu_us", measure.cpu_per_call(variants[name].sync, variants[name].calls))
        log(f"round {round_no + 1}/{settings.rounds} done")
    for name in plans:
        data = clients[name]
        for key, values in samples[name].items():
            if key.startswith("async."):
                _, level, metric = key.split(".")
                data.setdefault("async", {}).setdefault(level, {})[metric] = measure.median(values)
            else:
                data[key] = measure.median(values)
        data["samples"] = samples[name]
        data["construct_us"] = measure.construction_us(plans[name].sync, settings.construct_repeats)
    attribution = results["attribution"]
    attribution["labels"] = {spec.name: spec.label for spec in ATTRIBUTION_VARIANTS if spec.name in variants}
    attribution["end_to_end"] = {name: measure.median(samples[name]["sync_cpu_us"]) for name in variants}
    plans.clear()
    variants.clear()
    measure.close_loop(loop)


def measure_attribution_micro(server: ServerProcess, settings: Settings, results: dict[str, Any]) -> None:
    attribution = results["attribution"]
    micro = measure.attribution_micro(
        server.base_url(), repeats=3 if settings.smoke else 7, number=50 if settings.smoke else 2000
    )
    attribution["micro"] = micro
    ours = results["clients"].get(report.OURS_LC, {}).get("sync_cpu_us")
    if ours and "no-user" in micro and "config-user+policy" in micro:
        delta = max(0.0, micro["config-user+policy"] - micro["no-user"])
        attribution["policy_delta_us"] = delta
        attribution["policy_share_of_call"] = delta / ours


def measure_conversations(server: ServerProcess, settings: Settings, results: dict[str, Any]) -> None:
    """Client CPU per call for conversations of 1, 20, 100 and 400 messages, per client."""
    out: dict[str, Any] = {"lengths": list(CONVERSATION_LENGTHS), "clients": {}}
    results["conversation"] = out
    adapters: dict[str, tuple[Adapter, dict[int, Any], dict[int, int]]] = {}
    for name in CONVERSATION_CLIENTS:
        entry = out["clients"][name] = {"label": results["clients"].get(name, {}).get("label", name)}
        try:
            adapter = build(by_name(name), server.base_url())
            histories = {length: adapter.prepare_history(length) for length in CONVERSATION_LENGTHS}
            # Calibrated on the longest conversation, so every length gets about the same CPU budget.
            calls = {}
            for length in CONVERSATION_LENGTHS:
                per_call = measure.conversation_cpu(adapter, histories[length], 2 if settings.smoke else 5)
                calls[length] = _clamp(settings.target_s / (per_call / 1e6), 2, 2000)
        except Skip as err:
            entry["skipped"] = str(err)
            continue
        except Exception as err:
            entry["skipped"] = entry["failed"] = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            log(f"FAILED conversation {name}: {entry['failed']}")
            continue
        adapters[name] = (adapter, histories, calls)
    samples: dict[str, dict[int, list[float]]] = {name: {n: [] for n in CONVERSATION_LENGTHS} for name in adapters}
    for round_no in range(settings.rounds):
        names = list(adapters)
        shift = round_no % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            adapter, histories, calls = adapters[name]
            for length in CONVERSATION_LENGTHS:
                samples[name][length].append(measure.conversation_cpu(adapter, histories[length], calls[length]))
    for name, per_length in samples.items():
        out["clients"][name]["cpu_us"] = {str(n): measure.median(values) for n, values in per_length.items()}
    adapters.clear()


def failures(results: dict[str, Any]) -> list[str]:
    """Every measurement that failed (a client that is not installed is skipped, not failed)."""
    found = [f"{data['label']}: {data['failed']}" for data in results["clients"].values() if data.get("failed")]
    for name in (REFERENCE, report.OURS_LC):
        if results["clients"].get(name, {}).get("skipped"):
            found.append(f"{name} was not measured: {results['clients'][name]['skipped']}")
    for name, data in results["clients"].items():
        if not data.get("skipped") and "error" in data.get("connections", {}):
            found.append(f"connections of {name}: {data['connections']['error']}")
    attribution = results.get("attribution", {})
    found += [f"attribution variant {name}: {why}" for name, why in attribution.get("failed", {}).items()]
    if "error" in attribution.get("micro", {}):
        found.append(f"isolated attribution measurement: {attribution['micro']['error']}")
    for module, data in results.get("imports", {}).items():
        ours = module.startswith("openrouter_attribution") or module == "openai"
        if "error" in data and (ours or not data["error"].startswith("ModuleNotFoundError")):
            found.append(f"import {module}: {data['error']}")
    for name, data in results.get("conversation", {}).get("clients", {}).items():
        if data.get("failed"):
            found.append(f"conversation length, {name}: {data['failed']}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few calls per client (< 30 s): checks the runner")
    parser.add_argument("--rounds", type=int, default=None, help="measurement rounds (default 5; smoke 1)")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results (smoke: results/smoke)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiling step")
    parser.add_argument("--child-connections", metavar="CLIENT", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_connections:
        print(json.dumps(measure.child_connections(args.child_connections, args.port, args.calls)))
        return 0

    if args.out is None:  # a smoke run (part of `make test`) must not overwrite the last full results
        args.out = HERE / "results" / "smoke" if args.smoke else HERE / "results"
    settings = Settings.make(args.smoke, args.rounds)
    results: dict[str, Any] = {
        "machine": report.machine(),
        "settings": asdict(settings),
        "clients": {},
        "attribution": {},
    }
    log(f"{'smoke' if settings.smoke else 'full'} run, {settings.rounds} rounds")
    with ServerProcess() as server:
        measure_clients(server, settings, results)
        measure_attribution_micro(server, settings, results)
        log("usage ledger")
        ledger_bench.measure_ledger(server.base_url(), settings, results)
        log("embeddings")
        results["embeddings"] = embeddings.measure(
            server.base_url(), smoke=settings.smoke, rounds=settings.rounds, target_s=settings.target_s
        )
        log("rerank")
        results["rerank"] = rerank_bench.measure(
            server.base_url(), smoke=settings.smoke, rounds=settings.rounds, target_s=settings.target_s
        )
        log("responses API")
        results["responses"] = responses_bench.measure(
            server.base_url(), smoke=settings.smoke, rounds=settings.rounds, target_s=settings.target_s
        )
        log("conversation length")
        measure_conversations(server, settings, results)
        log("per-user budgets")
        budget_bench.measure_budget(server.base_url(), settings, results)
        log("dashboard pages (a ledger written through write_many)")
        results["dashboard"] = dashboard_bench.measure(smoke=settings.smoke)
        print(dashboard_bench.markdown(results["dashboard"]), file=sys.stderr)
        log("connections (one fresh interpreter per client)")
        for name, data in results["clients"].items():
            # The smoke run only checks that the child path works, on the two clients the targets need.
            if not data.get("skipped") and (not settings.smoke or name in (report.OURS_LC, REFERENCE)):
                data["connections"] = measure.connections_in_child(name, server, settings.connection_calls)
        log("imports (fresh interpreters)")
        results["imports"] = measure.import_times(settings.import_runs)
        if not args.no_profile:
            log("profiling")
            from profiling import profile_clients

            results["profiles"] = profile_clients(
                server, args.out / "profiles", (report.OURS_LC, "openai"),
                calls=settings.profile_calls, streams=max(5, settings.profile_calls // 20),
                concurrency=settings.concurrency[0], per_worker=max(1, settings.profile_calls // 200),
                delay_ms=settings.delay_ms,
            )  # fmt: skip
    results["targets"] = report.evaluate_targets(results)
    results["failures"] = failures(results)
    md_path, json_path = report.write(results, args.out)
    print(report.markdown(results, args.out))
    log(f"wrote {md_path} and {json_path}")
    if results["failures"]:
        print("\nBenchmark measurements FAILED:\n" + "\n".join(f"- {f}" for f in results["failures"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
