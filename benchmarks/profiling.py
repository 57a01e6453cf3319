"""Profiles of our LangChain model and the raw SDK on the three hot paths (sync, stream, async).

Two views per path and client, written to ``<out>/profiles/``:

* ``<path>-<client>.txt`` / ``.html``: a pyinstrument call tree (sampling, wall clock: time waiting for
  the socket shows up as ``select`` / ``recv_into`` leaves and is not client CPU).
* ``<path>-<client>.cprofile.txt``: a deterministic cProfile with a CPU clock: self time per package
  and the top functions, each per benchmark call, with call counts per benchmark call. cProfile's own
  overhead inflates code made of many small calls, so read these for ranking and counts, not absolutes.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sysconfig
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clients import Adapter, Skip, build, by_name
from server import ServerProcess

_STDLIB = str(Path(sysconfig.get_paths()["stdlib"]).resolve())


def _package(filename: str, function: str) -> str:
    if filename == "~":  # C functions: name them by what they do where it is obvious
        lowered = function.lower()
        if any(word in lowered for word in ("recv", "send", "select", "poll", "socket", "epoll")):
            return "socket / select (C)"
        if "json" in lowered or "scan" in lowered:
            return "json (C)"
        return "other C builtins"
    path = filename.replace("\\", "/")
    if "/openrouter_attribution/" in path:
        return "openrouter_attribution"
    if "/site-packages/" in path:
        top = path.split("/site-packages/", 1)[1].split("/", 1)[0]
        return top.removesuffix(".py")
    if path.startswith(_STDLIB):
        rest = path[len(_STDLIB) :].lstrip("/")
        return "stdlib " + rest.split("/", 1)[0].removesuffix(".py")
    if path.startswith("<"):
        return "generated code"
    if "/benchmarks/" in path:
        return "benchmark harness"
    return path


def cprofile_report(profile: cProfile.Profile, calls: int, title: str, top: int = 30) -> str:
    """Self CPU per package and the top functions, per benchmark call."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    rows = []
    total = 0.0
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        by_package[_package(filename, function)] += tottime
        total += tottime
        where = function if filename == "~" else f"{_package(filename, function)}:{Path(filename).name}:{line}"
        rows.append((tottime, cumtime, ncalls, where if filename == "~" else f"{where} {function}"))
    lines = [f"# {title}: cProfile (CPU clock), per benchmark call", "",
             f"total self CPU {total / calls * 1e6:.1f} µs per call (profiler overhead included)", "",
             "## self CPU by package", ""]  # fmt: skip
    for package, seconds in sorted(by_package.items(), key=lambda item: -item[1]):
        lines.append(f"{seconds / calls * 1e6:9.1f} µs  {seconds / total:6.1%}  {package}")
    lines += ["", "## top functions by self CPU", "", "   self µs    cum µs   calls  function"]
    for tottime, cumtime, ncalls, where in sorted(rows, key=lambda row: -row[0])[:top]:
        lines.append(f"{tottime / calls * 1e6:10.1f} {cumtime / calls * 1e6:9.1f} {ncalls / calls:7.2f}  {where}")
    lines += ["", "## top functions by cumulative CPU", "", "   self µs    cum µs   calls  function"]
    for tottime, cumtime, ncalls, where in sorted(rows, key=lambda row: -row[1])[:top]:
        lines.append(f"{tottime / calls * 1e6:10.1f} {cumtime / calls * 1e6:9.1f} {ncalls / calls:7.2f}  {where}")
    return "\n".join(lines) + "\n"


def _workloads(adapter: Adapter, loop: asyncio.AbstractEventLoop, calls: int, streams: int, concurrency: int,
               per_worker: int) -> dict[str, tuple[Callable[[], Any], int]]:  # fmt: skip
    def sync() -> None:
        for _ in range(calls):
            adapter.call()

    def stream() -> None:
        for _ in range(streams):
            adapter.stream()

    async def worker() -> None:
        for _ in range(per_worker):
            await adapter.acall()

    async def gathered() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    def run_async() -> None:
        loop.run_until_complete(gathered())

    return {"sync": (sync, calls), "stream": (stream, streams), "async": (run_async, concurrency * per_worker)}


def profile_clients(server: ServerProcess, out: Path, names: tuple[str, ...], *, calls: int, streams: int,
                    concurrency: int, per_worker: int, delay_ms: int) -> dict[str, str]:  # fmt: skip
    """Profile each path of each client; returns ``{"<path> <client>": file}`` of what was written."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None  # noqa: N806 - cProfile views are still written
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    loop = asyncio.new_event_loop()
    for name in names:
        try:
            adapter = build(by_name(name), server.base_url())
            async_adapter = build(by_name(name), server.base_url(delay_ms=delay_ms))
        except Skip:
            continue
        sync_work = _workloads(adapter, loop, calls, streams, concurrency, per_worker)
        async_work = _workloads(async_adapter, loop, calls, streams, concurrency, per_worker)
        plan = {"sync": sync_work["sync"], "stream": sync_work["stream"], "async": async_work["async"]}
        plan["async"][0]()  # warm the async pool
        for path, (work, count) in plan.items():
            stem = f"{path}-{name}"
            if Profiler is not None:
                profiler = Profiler(interval=0.0005, async_mode="enabled")
                profiler.start()
                work()
                profiler.stop()
                (out / f"{stem}.txt").write_text(profiler.output_text(unicode=True, color=False, show_all=False))
                (out / f"{stem}.html").write_text(profiler.output_html())
                written[f"{path} {name} (pyinstrument)"] = str(out / f"{stem}.txt")
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            work()
            profile.disable()
            (out / f"{stem}.cprofile.txt").write_text(cprofile_report(profile, count, f"{path} {name}"))
            written[f"{path} {name} (cProfile)"] = str(out / f"{stem}.cprofile.txt")
    return written
