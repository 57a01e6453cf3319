"""Tables (console and Markdown), the JSON document, machine description and target verdicts."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import budget_bench
import ledger_bench
import responses_bench
from clients import REFERENCE
from embeddings import markdown as embeddings_markdown
from embeddings import targets as embeddings_targets
from rerank_bench import markdown as rerank_markdown
from rerank_bench import targets as rerank_targets

OURS_LC = "ours-lc"
PACKAGES = (
    "openrouter-attribution", "openai", "httpx2", "httpx", "pydantic", "langchain-core", "langchain-openai",
    "langchain-openrouter", "openrouter", "llama-index-core", "llama-index-llms-openrouter",
    "llama-index-llms-openai", "pyinstrument",
)  # fmt: skip


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "packages": versions,
    }


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return ""
    return f" ({value / reference:.2f}x)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ratio(results: dict[str, Any], name: str, *path: str) -> float | None:
    """``name``'s value at ``path`` divided by the reference client's."""

    def get(client: str) -> float | None:
        node: Any = results["clients"].get(client, {})
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    value, reference = get(name), get(REFERENCE)
    return value / reference if value is not None and reference else None


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The library's performance targets, each with the measured value and whether it is met."""
    targets: list[dict[str, Any]] = []
    clients = results["clients"]
    ours = clients.get(OURS_LC, {})
    ref = clients.get(REFERENCE, {})

    def add(name: str, value: str, met: bool | None) -> None:
        targets.append({"target": name, "measured": value, "met": met})

    sync = ratio(results, OURS_LC, "sync_cpu_us")
    add("LangChain sync CPU per call <= 1.0x SDK", f"{sync:.2f}x" if sync else "n/a", sync <= 1.0 if sync else None)
    chunk = ratio(results, OURS_LC, "chunk_cpu_us")
    add("CPU per streamed chunk <= 0.6x SDK", f"{chunk:.2f}x" if chunk else "n/a", chunk <= 0.6 if chunk else None)
    for level in results["settings"]["concurrency"]:
        key = str(level)
        thr = ratio(results, OURS_LC, "async", key, "calls_per_s")
        new = ours.get("async", {}).get(key, {}).get("new_connections")
        ref_new = ref.get("async", {}).get(key, {}).get("new_connections")
        reused = new is not None and ref_new is not None and new <= ref_new
        add(f"async throughput >= 1.0x SDK at concurrency {level}, connections reused",
            f"{thr:.2f}x, {_fmt(new)} new conns/run (SDK {_fmt(ref_new)})" if thr else "n/a",
            thr >= 1.0 and reused if thr else None)  # fmt: skip
    attribution = results.get("attribution", {})
    share = attribution.get("policy_share_of_call")
    add("attribution + identity policy < 2% of a call's client CPU",
        f"{share:.2%}" if share is not None else "n/a", share < 0.02 if share is not None else None)  # fmt: skip
    conns = ours.get("connections", {})
    streamed = conns.get("stream")
    per = conns.get("per_calls") or 100
    add("<= 2 new connections per 100 sequential streamed calls",
        f"{streamed} per {per}" if streamed is not None else "n/a",
        streamed * 100 / per <= 2 if streamed is not None else None)  # fmt: skip
    build = ours.get("construct_us")
    add("second model with the same settings < 1 ms", f"{_fmt(build)} µs" if build else "n/a",
        build < 1000 if build else None)  # fmt: skip
    imports = results.get("imports", {})
    top = imports.get("openrouter_attribution", {})
    loaded = [
        m for m in top.get("loaded", []) if m in ("openai", "httpx2", "httpx", "langchain_core", "llama_index.core")
    ]
    add("import openrouter_attribution < 150 ms, no framework / openai",
        f"{_fmt(top.get('ms'), 1)} ms, loads {loaded or 'none of them'}" if "ms" in top else "n/a",
        top["ms"] < 150 and not loaded if "ms" in top else None)  # fmt: skip
    ours_lc = imports.get("openrouter_attribution.langchain", {}).get("ms")
    lc_openai = imports.get("langchain_openai", {}).get("ms")
    add("import openrouter_attribution.langchain <= import langchain_openai",
        f"{_fmt(ours_lc, 1)} ms vs {_fmt(lc_openai, 1)} ms" if ours_lc and lc_openai else "n/a",
        ours_lc <= lc_openai if ours_lc and lc_openai else None)  # fmt: skip
    targets += ledger_bench.evaluate(results)
    if "embeddings" in results:
        targets += embeddings_targets(results["embeddings"])
    if "rerank" in results:
        targets += rerank_targets(results["rerank"])
    if "responses" in results:
        targets += responses_bench.targets(results["responses"])
    targets += budget_bench.evaluate(results)
    return targets


def markdown(results: dict[str, Any], out: Path = Path()) -> str:
    """The report; profile paths are shown relative to ``out``."""
    settings = results["settings"]
    levels = [str(level) for level in settings["concurrency"]]
    clients = results["clients"]
    ref = clients.get(REFERENCE, {})
    mach = results["machine"]
    lines = [
        f"# Benchmark results{' (smoke run: numbers are not meaningful)' if settings['smoke'] else ''}",
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores ({mach['cores_usable']} usable), "
        f"{mach['implementation']} {mach['python']}, {mach['os']}.  ",
        f"Settings: {settings['rounds']} rounds (median shown), {settings['chunks']}-chunk streams, "
        f"async server delay {settings['delay_ms']} ms. Ratios are to the raw openai SDK in the same run.",
        "",
        "## Client CPU and async throughput",
        "",
    ]
    header = ["client", "sync CPU µs/call", "stream CPU µs/chunk"]
    for level in levels:
        header += [f"async c={level} calls/s", f"async c={level} CPU µs/call"]
    rows = []
    skipped = []
    for data in clients.values():
        if data.get("skipped"):
            skipped.append(f"- **{data['label']}** skipped: {data['skipped']}")
            continue
        row = [
            data["label"],
            _fmt(data.get("sync_cpu_us")) + _ratio(data.get("sync_cpu_us"), ref.get("sync_cpu_us")),
            _fmt(data.get("chunk_cpu_us"), 1) + _ratio(data.get("chunk_cpu_us"), ref.get("chunk_cpu_us")),
        ]
        for level in levels:
            run = data.get("async", {}).get(level, {})
            ref_run = ref.get("async", {}).get(level, {})
            row += [_fmt(run.get("calls_per_s")) + _ratio(run.get("calls_per_s"), ref_run.get("calls_per_s")),
                    _fmt(run.get("cpu_us")) + _ratio(run.get("cpu_us"), ref_run.get("cpu_us"))]  # fmt: skip
        rows.append(row)
    lines += _table(header, rows)
    lines += ["", "## Connections and construction", ""]
    header = ["client", *(f"new conns per async run c={level}" for level in levels),
              "conns per N sequential calls (plain / stream)", "open after del + gc", "2nd model µs"]  # fmt: skip
    rows = []
    for data in clients.values():
        if data.get("skipped"):
            continue
        conns = data.get("connections", {})
        per_calls = (f"{conns['non_stream']} / {conns['stream']} (N={conns['per_calls']})" if "stream" in conns
                     else conns.get("error", "–"))  # fmt: skip
        new_conns = [_fmt(data.get("async", {}).get(level, {}).get("new_connections")) for level in levels]
        build = _fmt(data.get("construct_us")) + _ratio(data.get("construct_us"), ref.get("construct_us"))
        rows.append([data["label"], *new_conns, per_calls, _fmt(conns.get("left_open")), build])
    lines += _table(header, rows)
    if skipped:
        lines += ["", *skipped]
    lines += ["", "## Import time (fresh interpreter, median wall ms)", ""]
    rows = []
    for module, data in results.get("imports", {}).items():
        if "error" in data:
            rows.append([f"`{module}`", "skipped", data["error"]])
        else:
            rows.append([f"`{module}`", _fmt(data.get("ms"), 1), ", ".join(data.get("loaded", [])) or "none"])
    lines += _table(["module", "ms", "heavy modules loaded"], rows)
    lines += ["", "## Cost of attribution (our LangChain model)", ""]
    attribution = results.get("attribution", {})
    end_to_end = attribution.get("end_to_end", {})
    micro = attribution.get("micro", {})
    base = end_to_end.get("no-user")
    rows = []
    for name, label in attribution.get("labels", {}).items():
        value = end_to_end.get(name)
        delta = value - base if value is not None and base is not None else None
        step = micro.get(name)
        rows.append([label, _fmt(value), _fmt(delta, 1) if name != "no-user" else "", _fmt(step, 1)])
    lines += _table(["variant", "sync CPU µs/call (end to end)", "Δ µs (noisy)", "prepare step µs (isolated)"], rows)
    if "error" in micro:
        lines.append(f"\nIsolated measurement unavailable: {micro['error']}")
    if "policy_apply_uncached" in micro:
        lines.append(f"\n`UserIdPolicy.apply`: {_fmt(micro['policy_apply_uncached'], 1)} µs for a new id, "
                     f"{_fmt(micro['policy_apply_cached'], 2)} µs for a cached one.")  # fmt: skip
    if attribution.get("policy_share_of_call") is not None:
        lines.append(f"Attribution + policy (isolated prepare step, policy vs no user): "
                     f"{_fmt(attribution['policy_delta_us'], 1)} µs = {attribution['policy_share_of_call']:.2%} "
                     "of our sync call's client CPU.")  # fmt: skip
    lines += conversation_lines(results)
    lines += ledger_bench.markdown_lines(results)
    if "embeddings" in results:
        lines += embeddings_markdown(results["embeddings"])
    if "rerank" in results:
        lines += rerank_markdown(results["rerank"])
    if "responses" in results:
        lines += responses_bench.markdown(results["responses"])
    lines += budget_bench.markdown_lines(results)
    lines += ["", "## Targets (our LangChain model vs the raw openai SDK)", ""]
    verdict = {True: "met", False: "**NOT met**", None: "n/a"}
    lines += _table(["target", "measured", "verdict"],
                    [[t["target"], t["measured"], verdict[t["met"]]] for t in results.get("targets", [])])  # fmt: skip
    if results.get("profiles"):
        lines += ["", "## Profiles", ""]
        lines += [f"- {name}: `{Path(path).relative_to(out) if Path(path).is_relative_to(out) else path}`"
                  for name, path in results["profiles"].items()]  # fmt: skip
    if results.get("failures"):
        lines += ["", "## FAILED measurements", "", *(f"- {failure}" for failure in results["failures"])]
    lines += ["", "Packages: " + ", ".join(f"{k} {v}" for k, v in mach["packages"].items() if v), ""]
    return "\n".join(lines)


def conversation_lines(results: dict[str, Any]) -> list[str]:
    """The table of client CPU per call against conversation length."""
    conversation = results.get("conversation")
    if not conversation:
        return []
    lengths = [str(n) for n in conversation["lengths"]]
    lines = ["", "## Client CPU per call vs conversation length (µs; ratio to the SDK at that length)", "",
             "Histories of human, AI with a tool call, tool result, AI answer, repeating; non-streamed sync calls.",
             ""]  # fmt: skip
    clients = conversation["clients"]
    ref = clients.get(REFERENCE, {}).get("cpu_us", {})
    rows = []
    for data in clients.values():
        if data.get("skipped"):
            rows.append([data["label"], *(["skipped"] * len(lengths))])
            continue
        cpu = data.get("cpu_us", {})
        rows.append([data["label"], *(_fmt(cpu.get(n)) + _ratio(cpu.get(n), ref.get(n)) for n in lengths)])
    return lines + _table(["client", *(f"{n} message{'s' if n != '1' else ''}" for n in lengths)], rows)


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / "latest.md", out / "latest.json"
    md_path.write_text(markdown(results, out))
    json_path.write_text(json.dumps(results, indent=2, default=str))
    return md_path, json_path
