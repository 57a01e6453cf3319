"""A synthetic ledger for the dashboard benchmark: ``n`` records written straight through a store's ``write_many``.

Usage: ``python benchmarks/dashboard_ledger.py PATH_OR_DSN [--records N]`` (default 1,000,000).
The records are spread over the last 30 days, 2,000 users, 12 models, 4 kinds and a few sessions per user,
with costs of up to 10 decimals; about 1 in 50 calls failed (no cost), about half carry a generation id.
Nothing is committed: the file is made again whenever it is needed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from openrouter_attribution.usage.ledger import open_store  # noqa: E402
from openrouter_attribution.usage.records import UsageRecord  # noqa: E402

MODELS = [f"vendor{i % 4}/model-{i}" for i in range(12)]
KINDS = ["chat", "chat", "chat", "embeddings", "rerank", "responses"]
USERS = 2_000
DAYS = 30
BATCH = 10_000


def records(n: int, *, now: float | None = None, seed: int = 7) -> Iterator[UsageRecord]:
    """``n`` reproducible records of the last :data:`DAYS` days (a few users spend much more than most)."""
    rng = random.Random(seed)
    end = time.time() if now is None else now
    start = end - DAYS * 86_400
    for i in range(n):
        user = f"app_{int(rng.paretovariate(1.2)) % USERS}"
        failed = rng.random() < 0.02
        prompt, completion = rng.randint(20, 4_000), rng.randint(1, 800)
        cost = None if failed else Decimal(rng.randint(1, 5_000_000)).scaleb(-10)
        yield UsageRecord(
            record_id=f"bench-{seed}-{i}",
            time=start + (end - start) * i / n,
            user=user,
            session_id=f"{user}-s{rng.randint(0, 3)}",
            model_requested=rng.choice(MODELS),
            model_used=None if failed else rng.choice(MODELS),
            provider=None if failed else rng.choice(("OpenAI", "Anthropic", "Google")),
            prompt_tokens=None if failed else prompt,
            completion_tokens=None if failed else completion,
            cost=cost,
            latency_s=rng.uniform(0.2, 4.0),
            generation_id=None if failed or i % 2 else f"gen-{seed}-{i}",
            outcome="RateLimitError" if failed else "ok",
            kind=rng.choice(KINDS),
        )


def fill(location: str, n: int) -> float:
    """Write ``n`` records to the ledger at ``location`` in batches; returns the seconds it took."""
    started = time.perf_counter()
    store = open_store(location)
    try:
        batch: list[UsageRecord] = []
        for record in records(n):
            batch.append(record)
            if len(batch) == BATCH:
                store.write_many(batch)
                batch = []
        store.write_many(batch)
    finally:
        store.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("location", help="an SQLite file (created) or a PostgreSQL DSN")
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    seconds = fill(args.location, args.records)
    print(f"{args.records:,} records in {seconds:.1f} s -> {args.location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
