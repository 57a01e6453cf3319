"""``openrouter-attribution dashboard``: serve the read-only usage dashboard with uvicorn.

It binds 127.0.0.1 by default. Any other address needs a token (``--token`` or
``OPENROUTER_ATTRIBUTION_DASHBOARD_TOKEN``): the pages show every end-user's usage. The token is never
printed; the address printed carries none.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
from collections.abc import Callable
from typing import IO, Any

from openrouter_attribution import environment

__all__ = ["add_parser", "dashboard_command", "is_loopback"]


def add_parser(sub: Any, add_db: Callable[[argparse.ArgumentParser], None], add_command: Any) -> None:
    """Register ``dashboard`` on ``sub``."""
    parser = add_command(
        sub, "dashboard", "serve the read-only usage dashboard (pages, JSON and CSV) until Ctrl-C",
        "Serve the usage dashboard of a ledger: spend, requests and tokens by day, user, model, kind and dimension;\n"
        "budgets and reconciliation; every page also as JSON (/api/...) and every table as CSV. The ledger is\n"
        f"opened read-only. Binds 127.0.0.1 unless --host says otherwise, which needs a token (--token or\n"
        f"{environment.DASHBOARD_TOKEN_ENV}).",
        ["dashboard --db usage.db", "dashboard --db usage.db --port 9000",
         f"dashboard --db postgresql://app:pw@db:5432/usage --host 0.0.0.0  # with {environment.DASHBOARD_TOKEN_ENV}"],
    )  # fmt: skip
    add_db(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument(
        "--token", help=f"require this token of every request (default: ${environment.DASHBOARD_TOKEN_ENV})"
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def dashboard_command(args: argparse.Namespace, out: IO[str], fail: Callable[[str], Exception]) -> int:
    """Run the dashboard until interrupted; ``fail(message)`` is the CLI's one-line error."""
    token = args.token or environment.dashboard_token()
    if not is_loopback(args.host) and not token:
        raise fail(
            f"--host {args.host} serves every user's usage beyond this machine: set a token with --token or "
            f"{environment.DASHBOARD_TOKEN_ENV}"
        )
    try:
        uvicorn = importlib.import_module("uvicorn")
        dashboard = importlib.import_module("openrouter_attribution.dashboard")
    except ModuleNotFoundError as err:
        raise fail(f'the dashboard needs {err.name}: pip install "openrouter-attribution[dashboard]"') from None
    app = dashboard.create_app(args.db, token=token)
    host = f"[{args.host}]" if ":" in args.host else args.host
    out.write(f"dashboard: http://{host}:{args.port}/" + (" (token required)" if token else "") + "\n")
    out.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
