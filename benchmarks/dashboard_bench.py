"""Dashboard pages over a large ledger: milliseconds per page, each an HTTP GET through the ASGI app.

Usage: ``python benchmarks/dashboard_bench.py [--smoke] [--records N]`` (``make bench`` runs it too).
The ledger (1,000,000 records; ``--smoke``: 5,000) is written by :mod:`dashboard_ledger` straight through
the store's ``write_many``, to SQLite and, when the machine has PostgreSQL binaries, to a throwaway
PostgreSQL cluster. Each page is fetched once to warm up, then ``repeats`` times; the median is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dashboard_ledger  # noqa: E402

PAGES = [
    "/",
    "/?period=30d",
    "/?period=today",
    "/users",
    "/users/app_1",
    "/users/app_77",
    "/dimensions/provider",
    "/dimensions/model/" + quote(dashboard_ledger.MODELS[0], safe=""),
    "/budgets",
    "/reconciliation",
    "/api/overview",
    "/?format=csv&table=top_users",
]


async def _time_pages(location: str, repeats: int) -> dict[str, float]:
    import httpx

    from openrouter_attribution import UserBudget
    from openrouter_attribution.dashboard import create_app

    app = create_app(location, budget=UserBudget(max_cost=1, period="month"))
    timings: dict[str, float] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard", timeout=600) as client:
        for path in PAGES:
            samples = []
            for attempt in range(repeats + 1):
                started = time.perf_counter()
                response = await client.get(path)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
                if attempt:  # the first fetch warms the connection and the page cache
                    samples.append(elapsed)
            timings[path] = statistics.median(samples) * 1000
    app.state.store.close()
    return timings


def _postgres_location(stack: Any) -> str | None:
    from openrouter_attribution.testing.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer()
    except PostgresUnavailable as err:
        print(f"  postgres: skipped ({err})", file=sys.stderr)
        return None
    server.start()
    stack.callback(server.stop)
    return server.create_database("dashboard")


def measure(*, smoke: bool, records: int | None = None, repeats: int | None = None) -> dict[str, Any]:
    """``{"records": n, "sqlite": {page: ms}, "postgres": {page: ms} or absent}``."""
    import contextlib

    n = records or (5_000 if smoke else 1_000_000)
    repeats = repeats or (1 if smoke else 3)
    results: dict[str, Any] = {"records": n}
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        locations = {"sqlite": str(Path(folder) / "dashboard.db")}
        dsn = _postgres_location(stack)
        if dsn is not None:
            locations["postgres"] = dsn
        for backend, location in locations.items():
            seconds = dashboard_ledger.fill(location, n)
            print(f"  {backend}: {n:,} records written in {seconds:.1f} s", file=sys.stderr)
            results[backend] = asyncio.run(_time_pages(location, repeats))
    return results


def markdown(results: dict[str, Any]) -> str:
    """A table of milliseconds per page and backend."""
    backends = [name for name in ("sqlite", "postgres") if name in results]
    lines = [f"Dashboard pages over {results['records']:,} records (median ms per GET through the ASGI app)", "",
             "| page | " + " | ".join(backends) + " |", "|---|" + "---:|" * len(backends)]  # fmt: skip
    for path in PAGES:
        lines.append(f"| `{path}` | " + " | ".join(f"{results[b][path]:,.0f}" for b in backends) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a 5,000-record ledger, one fetch per page")
    parser.add_argument("--records", type=int, help="records in the ledger (default 1,000,000)")
    parser.add_argument("--repeats", type=int, help="timed fetches per page (default 3; smoke 1)")
    args = parser.parse_args(argv)
    print(markdown(measure(smoke=args.smoke, records=args.records, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
