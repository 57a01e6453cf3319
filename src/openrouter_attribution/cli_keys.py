"""``openrouter-attribution keys``: the end-users' own OpenRouter keys, through the management API.

The management key comes from ``OPENROUTER_MANAGEMENT_KEY`` (never from the command line, where a
shell history or a process list would keep it) and is never printed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from openrouter_attribution.keys import DEFAULT_NAME_PREFIX, KeyManager, UserKeyUsage

__all__ = ["add_parser", "keys_command"]


NO_LIMIT = "none"


def _amount(text: str) -> Decimal | str:
    if text.lower() == NO_LIMIT:
        return NO_LIMIT
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an amount in USD or 'none', got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative amount in USD, got {text!r}")
    return value


def add_parser(sub: Any, add_command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``keys`` (with ``list``, ``show``, ``set-limit`` and ``disable``) to the subcommand parsers."""
    keys = add_command(
        sub, "keys", "the end-users' own OpenRouter keys: list, show, set-limit, disable",
        "The OpenRouter keys that OpenRouterUserKeys created, one per end-user, as OpenRouter meters them: usage,\\n"
        "limit and what is left of it. Needs OPENROUTER_MANAGEMENT_KEY (a management key; never printed).",
        ["keys list", "keys show app_42 --format json", "keys set-limit app_42 5.00 --reset monthly",
         "keys set-limit app_42 none", "keys disable app_42"],
    )  # fmt: skip
    keys.add_argument("action", choices=("list", "show", "set-limit", "disable"), help="what to do")
    keys.add_argument("user", nargs="?", help="the end-user id as sent (show, set-limit, disable)")
    keys.add_argument("amount", nargs="?", type=_amount, help="set-limit: the limit in USD, or 'none' for no limit")
    keys.add_argument("--reset", choices=("daily", "weekly", "monthly"), help="set-limit: when the limit resets")
    keys.add_argument("--name-prefix", default=DEFAULT_NAME_PREFIX,
                      help=f"the prefix of the keys' names (default {DEFAULT_NAME_PREFIX!r})")  # fmt: skip
    keys.add_argument("--base-url", metavar="URL", help="API base URL (default: $OPENROUTER_BASE_URL or OpenRouter)")
    keys.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")


def keys_command(args: argparse.Namespace, out: IO[str]) -> int:
    """Run ``keys ACTION``.

    Raises:
        ConfigurationError: a missing USER or AMOUNT, no management key, or a user without a key.
        APIError: OpenRouter refused the request (a wrong management key: ``AuthenticationError``).
    """
    from openrouter_attribution.errors import ConfigurationError

    if args.action != "list" and not args.user:
        raise ConfigurationError(f"keys {args.action} needs USER, the end-user id as sent")
    if args.action == "set-limit" and args.amount is None:
        raise ConfigurationError("keys set-limit needs AMOUNT (USD, or 'none')")
    manager = KeyManager(base_url=args.base_url, name_prefix=args.name_prefix)
    if args.action == "list":
        rows = manager.list_keys()
    elif args.action == "show":
        rows = [_found(manager.usage, args.user)]
    elif args.action == "set-limit":
        amount = None if args.amount == NO_LIMIT else args.amount
        rows = [_found(lambda user: manager.set_limit(user, amount, reset=args.reset), args.user)]
    else:
        rows = [_found(manager.disable, args.user)]
    _print(rows, args.format, out)
    return 0


def _found(action: Callable[[str], UserKeyUsage], user: str) -> UserKeyUsage:
    from openrouter_attribution.errors import ConfigurationError

    try:
        return action(user)
    except KeyError:
        raise ConfigurationError(f"no OpenRouter key for the user {user!r} (a call for them creates it)") from None


def _print(rows: list[UserKeyUsage], form: str, out: IO[str]) -> None:
    if form == "json":
        items = [{name: (str(value) if isinstance(value, Decimal) else value) for name, value in asdict(row).items()}
                 for row in rows]  # fmt: skip
        out.write(json.dumps(items, indent=2) + "\n")
        return
    header = ("user", "usage", "today", "limit", "remaining", "reset", "disabled")
    table = [header] + [
        (row.user, f"{row.usage:.6f}", f"{row.usage_daily:.6f}", "-" if row.limit is None else f"{row.limit:.6f}",
         "-" if row.limit_remaining is None else f"{row.limit_remaining:.6f}", row.limit_reset or "-",
         "yes" if row.disabled else "no")
        for row in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n")
