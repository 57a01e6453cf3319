"""The ``budget`` and ``reconcile`` subcommands of ``openrouter-attribution``.

``budget --db LOC --user ID [--max-cost USD] [--max-requests N] [--period day|week|month|total]``
shows one user's current window: spend and requests of ended calls, what calls in flight hold, the
limits and when the window resets. Limits live in the application's code (``UserBudget``), not in the
ledger, so the command takes them as flags; without them it shows usage only.

``reconcile --db LOC [--since TIME] [--base-url URL]`` fetches OpenRouter's billed cost of every record
not reconciled yet (``GET /generation``), with the key from ``OPENROUTER_API_KEY`` (never printed), and
ends with a summary: checked, updated, not found, user mismatches, total drift. A progress line goes to
stderr when it is a terminal. Interrupted, it keeps what it fetched; run it again to resume.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

__all__ = ["add_parsers", "budget_command", "reconcile_command"]

AddDb = Callable[[argparse.ArgumentParser], None]


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an amount in USD such as 0.50, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite amount >= 0, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_number(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _count(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def add_parsers(sub: Any, add_db: AddDb, add_command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``budget`` and ``reconcile`` to the subcommand parsers (``add_command`` as in ``cli``)."""
    budget = add_command(
        sub, "budget", "one user's budget window: spend, reservations, limit, reset",
        "One end-user's current budget window: what was spent, what calls in flight reserved, the limit and "
        "when\nthe window resets (UTC).",
        ["budget --db usage.db --user app_42 --max-cost 5 --period month",
         "budget --db usage.db --user app_42 --max-requests 100 --format json"],
    )  # fmt: skip
    add_db(budget)
    budget.add_argument("--user", required=True, help="the end-user id as sent (after any id policy)")
    budget.add_argument("--max-cost", type=_usd, metavar="USD", help="the cost limit of the window")
    budget.add_argument("--max-requests", type=_count, metavar="N", help="the request limit of the window")
    budget.add_argument("--period", choices=("day", "week", "month", "total"), default="day",
                        help="the window: UTC day (default), week from Monday, month, or all time")  # fmt: skip
    budget.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")

    rec = add_command(
        sub, "reconcile", "fetch OpenRouter's billed cost of every unreconciled record",
        "Ask OpenRouter (GET /generation) for the billed cost of every record not yet reconciled, and store it\n"
        "beside the reported cost. Needs OPENROUTER_API_KEY.",
        ["reconcile --db usage.db", "reconcile --db usage.db --since 2026-12-01 --concurrency 4"],
    )  # fmt: skip
    add_db(rec)
    rec.add_argument("--since", metavar="TIME", help="only records from this time: ISO date/datetime or epoch")
    rec.add_argument("--base-url", metavar="URL", help="API base URL (default: $OPENROUTER_BASE_URL or OpenRouter)")
    rec.add_argument(
        "--concurrency", type=positive_number, default=8, metavar="N", help="lookups in flight (default 8)"
    )
    rec.add_argument(
        "--recent",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="a 404 for a generation younger than this is retried, not 'not found' (default 600)",
    )
    rec.add_argument("--retry-for", type=_seconds, default=30.0, metavar="SECONDS",
                     help="how long a recent 404 is retried in this run (default 30)")  # fmt: skip
    rec.add_argument("--retry-not-found", action="store_true", help="ask again for generations not found before")


def _iso(moment: datetime | None) -> str:
    return "never (period total)" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def budget_command(args: argparse.Namespace, out: IO[str], open_store: Callable[[str], Any]) -> int:
    """Print one user's budget window."""
    from openrouter_attribution.usage.budgets.budget import UserBudget, budget_status
    from openrouter_attribution.usage.records import format_cost

    budget = UserBudget(max_cost=args.max_cost, max_requests=args.max_requests, period=args.period)
    store = open_store(args.db)
    try:
        status = budget_status(store, args.user, budget)
    finally:
        store.close()
    usage = status.usage
    if args.format == "json":
        data = {"user": status.user, "period": status.period, "window_start": _iso(status.window_start),
                "resets_at": None if status.resets_at is None else _iso(status.resets_at),
                "spent": usage.spent, "requests": usage.requests, "reserved": usage.reserved,
                "in_flight": usage.in_flight, "max_cost": status.max_cost, "max_requests": status.max_requests,
                "remaining_cost": status.remaining_cost, "remaining_requests": status.remaining_requests}  # fmt: skip
        items = (
            f"  {json.dumps(k)}: {format_cost(v) if isinstance(v, Decimal) else json.dumps(v)}" for k, v in data.items()
        )  # amounts are JSON numbers with their exact digits
        out.write("{\n" + ",\n".join(items) + "\n}\n")
        return 0
    limits = [f"{status.max_cost} USD" if status.max_cost is not None else None,
              f"{status.max_requests} requests" if status.max_requests is not None else None]  # fmt: skip
    left = [f"{format_cost(status.remaining_cost)} USD" if status.remaining_cost is not None else None,
            f"{status.remaining_requests} requests" if status.remaining_requests is not None else None]  # fmt: skip
    lines = [
        ("user", status.user or ""),
        ("period", f"{status.period} (UTC)"),
        ("window", f"from {_iso(status.window_start)}, resets {_iso(status.resets_at)}"),
        ("spent", f"{format_cost(usage.spent)} USD in {usage.requests} request(s)"),
        ("in flight", f"{format_cost(usage.reserved)} USD held by {usage.in_flight} call(s)"),
        ("limit", ", ".join(x for x in limits if x) or "none given (pass --max-cost / --max-requests)"),
    ]
    if any(left):
        lines.append(("remaining", ", ".join(x for x in left if x)))
    out.write("".join(f"{name:<10} {value}\n" for name, value in lines))
    return 0


def reconcile_command(args: argparse.Namespace, out: IO[str], open_store: Callable[[str], Any]) -> int:
    """Reconcile the ledger with OpenRouter's billed costs; prints the summary (exit 1 if lookups failed)."""
    from openrouter_attribution import environment
    from openrouter_attribution.errors import ConfigurationError
    from openrouter_attribution.usage import queries
    from openrouter_attribution.usage.reconcile import reconcile

    if not environment.api_key():
        raise ConfigurationError("reconcile needs OpenRouter's API key in the OPENROUTER_API_KEY environment variable")
    store = open_store(args.db)
    progress = _progress if sys.stderr.isatty() else None
    try:
        summary = reconcile(store, base_url=args.base_url, since=queries.parse_time(args.since),
                            concurrency=args.concurrency, recent=args.recent, retry_for=args.retry_for,
                            retry_not_found=args.retry_not_found, progress=progress)  # fmt: skip
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: what was fetched is stored; run the command again to resume\n")
        raise
    finally:
        store.close()
        if progress is not None:
            sys.stderr.write("\n")
    out.write(summary.describe() + "\n")
    return 1 if summary.failed else 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\rreconcile [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}")
    sys.stderr.flush()
