"""The dashboard's ASGI app (Starlette): routes, and each page as HTML, JSON or CSV.

Every page is built once per request by :mod:`.pages` from the query layer, then rendered as the
client asked: ``Accept: application/json`` or a path under ``/api/`` gives JSON, ``?format=csv``
the CSV of one table (``&table=NAME``), anything else server-rendered HTML (Jinja2 with autoescape,
charts as inline SVG). The app never writes to the ledger: a location is opened read-only.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from openrouter_attribution import __version__
from openrouter_attribution.dashboard import pages
from openrouter_attribution.dashboard.auth import TokenGate
from openrouter_attribution.dashboard.charts import render_svg
from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage.budgets.budget import UserBudget
from openrouter_attribution.usage.ledger import UsageLedger, open_store
from openrouter_attribution.usage.records import UsageQueryError, UsageStoreError, format_cost
from openrouter_attribution.usage.stores.protocol import UsageStore

__all__ = ["create_app"]

NAV = [("/", "Overview"), ("/users", "Users"), ("/dimensions/provider", "Dimensions"), ("/budgets", "Budgets"),
       ("/reconciliation", "Reconciliation")]  # fmt: skip
_HEADERS = {
    # No script may run and nothing loads from elsewhere: the pages are HTML, inline CSS and inline SVG.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_DROP = ("format", "table", "token")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("openrouter_attribution.dashboard", "templates"),
        autoescape=True,  # every value is text to show, never markup (a user id may be "<script>...")
        undefined=jinja2.StrictUndefined,
    )
    env.globals["show"] = _show
    return env


def _show(value: Any, kind: str = "text") -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal) and kind == "usd":
        return f"${value:,.8f}"
    if kind == "time" and isinstance(value, str):  # ISO 8601 in JSON and CSV; to the second on the page
        return value[:19].replace("T", " ")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _json(value: Any) -> str:
    """JSON text with costs as exact numbers (the digits of the Decimal), as ``report --format json`` writes them."""
    if isinstance(value, Decimal):
        return format_cost(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _section(path: str) -> str:
    """The first segment of a route path (``/users/app_1`` -> ``users``): which navigation entry is current."""
    return path.strip("/").split("/", 1)[0]


def _csv(table: pages.Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([column.field for column in table.columns])
    for row in table.rows:
        values = (row.get(column.field) for column in table.columns)
        writer.writerow(["" if v is None else format_cost(v) if isinstance(v, Decimal) else v for v in values])
    return out.getvalue()


class _Dashboard:
    """The state of one app: its store, templates and budgets."""

    def __init__(self, store: UsageStore, budgets: tuple[UserBudget, ...], title: str) -> None:
        self.store = store
        self.budgets = budgets
        self.title = title
        self.env = _environment()
        self.css = resources.files("openrouter_attribution.dashboard").joinpath("style.css").read_text("utf-8")

    def page(self, build: Callable[[Request, pages.Period], pages.Page], *, period: bool = True) -> Callable[..., Any]:
        """A sync endpoint (Starlette runs it in its thread pool: the store's reads block)."""

        def endpoint(request: Request) -> Response:
            try:
                span = pages.parse_period(request.query_params, time.time()) if period else pages.Period("", None, None)
                return self.respond(request, build(request, span))
            except UsageQueryError as err:
                return self.error(request, 400, str(err))
            except UsageStoreError as err:
                return self.error(request, 503, str(err))

        return endpoint

    def wants_json(self, request: Request) -> bool:
        return self.route_path(request).startswith("/api/") or "application/json" in request.headers.get("accept", "")

    @staticmethod
    def route_path(request: Request) -> str:
        root, path = request.scope.get("root_path", ""), request.scope["path"]
        return path[len(root) :] if root and path.startswith(root) else path

    def respond(self, request: Request, page: pages.Page) -> Response:
        fmt = request.query_params.get("format")
        if fmt == "csv":
            table = page.table(request.query_params.get("table"))
            disposition = f'attachment; filename="{page.name}-{table.name}.csv"'
            return Response(_csv(table), 200, {**_HEADERS, "Content-Disposition": disposition}, "text/csv")
        if fmt == "json" or self.wants_json(request):
            return Response(_json(page.to_dict()), 200, _HEADERS, "application/json")
        if fmt not in (None, "html"):
            raise UsageQueryError(f"unknown format {fmt!r}; use html, json or csv")
        return HTMLResponse(self.html(request, page), 200, _HEADERS)

    def html(self, request: Request, page: pages.Page) -> str:
        params = {k: v for k, v in request.query_params.items() if k not in _DROP}
        route = self.route_path(request)

        def query(**changes: str) -> str:
            merged = dict(params)
            if "period" in changes:
                merged.pop("since", None)
                merged.pop("until", None)
            merged.update(changes)
            return urlencode(merged)

        current = next((href for href, _ in reversed(NAV) if _section(href) == _section(route)), "/")
        keep = [(k, v) for k, v in params.items() if k not in ("period", "since", "until")]
        charts = [{"title": chart.title, "svg": render_svg(chart)} for chart in page.charts]
        return self.env.get_template("page.html").render(
            page=page, charts=charts, nav=NAV, current=current, base=request.scope.get("root_path", "").rstrip("/"),
            app_title=self.title, css=self.css, periods=[*pages.PERIODS, "all"], params=params, keep=keep,
            query=query, usd_stats={"cost", "reported_cost", "drift"}, version=__version__,
        )  # fmt: skip

    def error(self, request: Request, status: int, message: str) -> Response:
        if self.wants_json(request):
            return JSONResponse({"error": message}, status, _HEADERS)
        page = pages.Page("error", "Error", None, notes=[message])
        return HTMLResponse(self.html(request, page), status, _HEADERS)


def _routes(app: _Dashboard) -> list[Route]:
    store = app.store
    builders: list[tuple[str, Callable[[Request, pages.Period], pages.Page], bool]] = [
        ("/", lambda r, p: pages.overview(store, p, r.query_params.get("dimension") or "provider"), True),
        ("/users", lambda r, p: pages.users(store, p), True),
        ("/users/{user:path}", lambda r, p: pages.user(store, p, r.path_params["user"]), True),
        ("/dimensions/{key}", lambda r, p: pages.dimension(store, p, r.path_params["key"]), True),
        ("/dimensions/{key}/{value:path}",
         lambda r, p: pages.dimension_value(store, p, r.path_params["key"], r.path_params["value"]), True),
        ("/budgets", lambda r, p: pages.budgets(store, time.time(), app.budgets), False),
        ("/reconciliation", lambda r, p: pages.reconciliation(store, p), True),
    ]  # fmt: skip
    routes = []
    for path, build, period in builders:
        endpoint = app.page(build, period=period)
        routes.append(Route(path, endpoint, methods=["GET", "HEAD"]))
        routes.append(Route("/api" + ("/overview" if path == "/" else path), endpoint, methods=["GET", "HEAD"]))
    routes.append(Route("/favicon.ico", lambda _: Response(status_code=204), methods=["GET", "HEAD"]))
    return routes


def create_app(
    location_or_ledger: str | os.PathLike[str] | UsageLedger | UsageStore,
    *,
    token: str | None = None,
    budget: UserBudget | Sequence[UserBudget] | None = None,
    title: str = "Usage",
) -> Any:
    """The usage dashboard as an ASGI app, read-only over a ledger.

    Args:
        location_or_ledger: An SQLite file or PostgreSQL DSN (opened read-only: never written nor
            migrated, closed when the app shuts down), or a :class:`UsageLedger` or store to read.
        token: When set, every request must carry it (``Authorization: Bearer``, or ``?token=`` once,
            which sets an HttpOnly cookie). Leave it unset only behind your own authentication or on
            127.0.0.1.
        budget: The :class:`UserBudget` (or several: a user's and a tenant's) your models use, for the
            budgets page; the alerts fired show without it.
        title: The name in the header.

    Returns:
        A Starlette application (serve it with uvicorn, or ``app.mount("/usage", ...)`` it).

    Raises:
        ConfigurationError: an empty token or an invalid location.
        UsageStoreError: no ledger at the location, or one of another schema version.

    Example:
        >>> from openrouter_attribution.usage import MemoryUsageStore
        >>> app = create_app(MemoryUsageStore(), token="s3cret")
    """
    if token is not None and not token.strip():
        raise ConfigurationError("the dashboard token is empty: pass a secret, or None for no token")
    owned = not isinstance(location_or_ledger, (UsageLedger, UsageStore))
    if isinstance(location_or_ledger, UsageLedger):
        store = location_or_ledger.store
    elif isinstance(location_or_ledger, UsageStore):
        store = location_or_ledger
    else:
        store = open_store(location_or_ledger, create=False, read_only=True)
        opener = getattr(store, "open", None)
        if opener is not None:
            try:
                opener()  # an unreachable server or a ledger of another schema fails here, not at the first page
            except BaseException:
                store.close()
                raise
    budgets = () if budget is None else (budget,) if isinstance(budget, UserBudget) else tuple(budget)
    dashboard = _Dashboard(store, budgets, title)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        if owned:
            store.close()

    app = Starlette(routes=_routes(dashboard), lifespan=lifespan)
    app.state.store = store
    if token is not None:
        app.add_middleware(TokenGate, token=token)
    return app
