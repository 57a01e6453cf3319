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
from measure import close_loop
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


def _function(filename: str, line: int, function: str) -> str:
    if filename == "~":
        return function
    return f"{_package(filename, function)}:{Path(filename).name}:{line} {function}"


def _per_call_lines(title: str, items: dict[str, float], calls: int, total: float, limit: int) -> list[str]:
    lines = ["", f"## {title}", ""]
    for name, seconds in sorted(items.items(), key=lambda item: -item[1])[:limit]:
        lines.append(f"{seconds / calls * 1e6:9.1f} µs  {seconds / total:6.1%}  {name}")
    return lines


def cprofile_report(profile: cProfile.Profile, calls: int, title: str, top: int = 30) -> str:
    """Self CPU per package and the top functions, per benchmark call.

    The self time of a C function (``isinstance``, ``dict.get``...) is charged to the packages that
    called it, in proportion to what each call site spent, so "by package" answers "whose code".
    """
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    rows = []
    total = 0.0
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, callers) in stats.items():
        total += tottime
        package = _package(filename, function)
        edges = sum(edge[2] for edge in callers.values()) if callers else 0.0
        if filename == "~" and package == "other C builtins" and edges > 0:
            for (caller_file, _line, caller_function), edge in callers.items():
                by_package[_package(caller_file, caller_function)] += tottime * edge[2] / edges
        else:
            by_package[package] += tottime
        rows.append((tottime, cumtime, ncalls, _function(filename, line, function)))
    lines = [f"# {title}: cProfile (CPU clock), per benchmark call", "",
             f"total self CPU {total / calls * 1e6:.1f} µs per call (profiler overhead included)"]  # fmt: skip
    lines += _per_call_lines("self CPU by package (C builtins charged to their callers)", by_package, calls, total, 100)
    header = ["   self µs    cum µs   calls  function"]
    lines += ["", "## top functions by self CPU", "", *header]
    for tottime, cumtime, ncalls, where in sorted(rows, key=lambda row: -row[0])[:top]:
        lines.append(f"{tottime / calls * 1e6:10.1f} {cumtime / calls * 1e6:9.1f} {ncalls / calls:7.2f}  {where}")
    lines += ["", "## top functions by cumulative CPU", "", *header]
    for tottime, cumtime, ncalls, where in sorted(rows, key=lambda row: -row[1])[:top]:
        lines.append(f"{tottime / calls * 1e6:10.1f} {cumtime / calls * 1e6:9.1f} {ncalls / calls:7.2f}  {where}")
    return "\n".join(lines) + "\n"


def pyinstrument_report(session: Any, calls: int, title: str, top: int = 40) -> str:
    """Sampled self time per package and per function (low overhead; wall clock, so socket waits show)."""
    by_package: dict[str, float] = defaultdict(float)
    by_function: dict[str, float] = defaultdict(float)

    def describe(frame: Any, caller: Any) -> tuple[str, str]:
        """(package, function label) of a real frame; C functions go to their Python caller's package."""
        file_path = frame.file_path or "~"
        function = frame.function or ""
        if file_path == "<built-in>":  # socket I/O stays apart; other C calls count for whoever called them
            package = _package("~", function)
            if package == "other C builtins" and caller is not None:
                package = _package(caller.file_path or "~", caller.function or "")
            return package, f"{package}: {function} (C)"
        package = _package(file_path, function)
        return package, f"{package}:{Path(file_path).name}:{frame.line_no} {function}"

    def walk(frame: Any, parent: Any, caller: Any) -> None:
        own = frame.time - sum(child.time for child in frame.children)
        if frame.is_synthetic and frame.identifier.startswith("[self]") and parent is not None:
            package, name = describe(parent, caller)  # a frame's own time, sampled as a child
        elif frame.is_synthetic:
            package = name = frame.identifier.split("\x00", 1)[0]  # [await], [out-of-context]...
        else:
            package, name = describe(frame, caller)
        if own > 0:
            by_package[package] += own
            by_function[name] += own
        is_python = not frame.is_synthetic and frame.file_path != "<built-in>"
        for child in frame.children:
            walk(child, frame, frame if is_python else caller)

    root = session.root_frame()
    if root is None:
        return f"# {title}: no samples\n"
    walk(root, None, None)
    total = sum(by_package.values()) or 1.0
    sampled, cpu = total / calls * 1e6, session.cpu_time / calls * 1e6
    lines = [f"# {title}: pyinstrument (sampled wall time), per benchmark call", "",
             f"sampled {sampled:.1f} µs per call; CPU {cpu:.1f} µs per call (profiler overhead included)"]  # fmt: skip
    lines += _per_call_lines("self time by package", by_package, calls, total, 100)
    lines += _per_call_lines("top functions by self time", by_function, calls, total, top)
    return "\n".join(lines) + "\n"


def _workloads(
    adapter: Adapter, loop: asyncio.AbstractEventLoop, calls: int, streams: int, concurrency: int, per_worker: int
) -> dict[str, tuple[Callable[[], Any], int]]:
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
                assert profiler.last_session is not None
                flat = pyinstrument_report(profiler.last_session, count, f"{path} {name}")
                (out / f"{stem}.flat.txt").write_text(flat)
                written[f"{path} {name} (pyinstrument)"] = str(out / f"{stem}.flat.txt")
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            work()
            profile.disable()
            (out / f"{stem}.cprofile.txt").write_text(cprofile_report(profile, count, f"{path} {name}"))
            written[f"{path} {name} (cProfile)"] = str(out / f"{stem}.cprofile.txt")
    close_loop(loop)
    return written
