"""What each dashboard page shows, built from the query layer only (no web framework, no SQL here).

A :class:`Page` is a title, headline numbers, charts and tables; the app renders it as HTML, JSON or
the CSV of one of its tables, so every view of a page comes from the same query calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.usage import queries
from openrouter_attribution.usage.budgets.alerts import alerts_fired
from openrouter_attribution.usage.budgets.budget import UserBudget, window
from openrouter_attribution.usage.records import UsageQueryError, UsageRecord, UsageTotals, format_time
from openrouter_attribution.usage.stores.protocol import UsageStore

__all__ = ["DIMENSIONS", "PERIODS", "Column", "Page", "Period", "Table", "parse_period"]

PERIODS = {"today": 0, "7d": 6, "30d": 29}
"""Named periods: today, or the last 7 or 30 UTC days (today included)."""
DEFAULT_PERIOD = "7d"
DIMENSIONS = ("provider", "model", "kind", "session")
"""Built-in keys of ``/dimensions/{key}`` and ``?dimension=``; any other name is a metadata key
(``tenant`` or ``metadata.tenant``: the records' ``metadata["tenant"]``)."""
METADATA = "metadata."


def dimension_name(name: str) -> str:
    """The group key a dimension of the address names: a built-in one, else ``metadata.<name>``."""
    return name if name in DIMENSIONS or name.startswith(METADATA) else METADATA + name


def dimension_label(name: str) -> str:
    return name.removeprefix(METADATA).capitalize()


TOP = 10
RECENT = 50
MAX_ROWS = 1000
"""Rows of a table listing every user or value (the CSV and JSON hold the same rows)."""


@dataclass(frozen=True)
class Period:
    """The time range a page covers: ``since`` inclusive, ``until`` exclusive (epoch seconds, ``None``: open)."""

    name: str
    since: float | None
    until: float | None

    def describe(self) -> str:
        def day(t: float | None, open_end: str) -> str:
            return open_end if t is None else format_time(t)[:16].replace("T", " ")

        return f"{day(self.since, 'the first record')} to {day(self.until, 'now')} UTC"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "since": None if self.since is None else format_time(self.since),
                "until": None if self.until is None else format_time(self.until)}  # fmt: skip


def parse_period(params: Mapping[str, str], now: float) -> Period:
    """``?period=today|7d|30d|all`` (default 7d) or ``?since=&until=`` (ISO dates or epoch seconds).

    Raises:
        UsageQueryError: an unknown period or an unreadable time.
    """
    since, until = params.get("since") or None, params.get("until") or None
    if since or until:
        return Period("custom", queries.parse_time(since), queries.parse_time(until))
    name = params.get("period") or DEFAULT_PERIOD
    if name == "all":
        return Period("all", None, None)
    if name not in PERIODS:
        raise UsageQueryError(f"unknown period {name!r}; use today, 7d, 30d, all, or since= and until=")
    midnight = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Period(name, (midnight - timedelta(days=PERIODS[name])).timestamp(), None)


@dataclass(frozen=True)
class Column:
    """A table column: the field in each row, its heading, and how it is shown (``text``, ``int``, ``usd``,
    ``time``)."""

    field: str
    label: str
    kind: str = "int"


@dataclass
class Table:
    """Rows of plain values (JSON- and CSV-ready); ``links`` maps a field to the URL of each row's value."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    links: dict[str, Callable[[Any], str | None]] = field(default_factory=dict)
    note: str = ""

    def href(self, column: str, value: Any) -> str | None:
        link = self.links.get(column)
        return None if link is None else link(value)


@dataclass
class Chart:
    """A series of (label, value) points drawn as bars."""

    title: str
    points: list[tuple[str, float]]
    kind: str = "bar"


@dataclass
class Page:
    """One dashboard page."""

    name: str
    title: str
    period: Period | None
    stats: list[tuple[str, str, Any]] = field(default_factory=list)
    """(key, label, value) headline numbers; ``value`` an int, a Decimal (USD) or text."""
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, name: str | None) -> Table:
        """The table named ``name`` (the only one when ``None``).

        Raises:
            UsageQueryError: no such table.
        """
        if name is None and len(self.tables) == 1:
            return self.tables[0]
        for table in self.tables:
            if table.name == name:
                return table
        raise UsageQueryError(f"no table {name!r} on this page; choose one of {', '.join(t.name for t in self.tables)}")

    def to_dict(self) -> dict[str, Any]:
        """The page's data: what the JSON answer holds."""
        return {
            "page": self.name,
            "title": self.title,
            "period": None if self.period is None else self.period.to_dict(),
            "stats": {key: value for key, _, value in self.stats},
            "tables": {table.name: table.rows for table in self.tables},
            "notes": self.notes,
        }


# -- tables from totals and records -----------------------------------------------------------------

TOTALS_COLUMNS = [Column("requests", "Requests"), Column("errors", "Errors"), Column("prompt_tokens", "Prompt"),
                  Column("completion_tokens", "Completion"), Column("cost", "Cost (USD)", "usd"),
                  Column("unknown_cost_requests", "Unknown cost")]  # fmt: skip


def url(*parts: str | None) -> str:
    """A path of the app from its segments, each one percent-encoded (``/`` included)."""
    return "/" + "/".join(quote("" if part is None else part, safe="") for part in parts)


def totals_table(name: str, title: str, key: str, label: str, rows: Iterable[UsageTotals], **kw: Any) -> Table:
    return Table(name, title, [Column(key, label, "text"), *TOTALS_COLUMNS], [r.to_dict(key) for r in rows], **kw)


def stats(total: UsageTotals) -> list[tuple[str, str, Any]]:
    return [("cost", "Spend (USD)", total.cost), ("requests", "Requests", total.requests),
            ("tokens", "Tokens", total.prompt_tokens + total.completion_tokens), ("errors", "Errors", total.errors),
            ("unknown_cost_requests", "Unknown cost", total.unknown_cost_requests)]  # fmt: skip


def spend_chart(by_day: list[UsageTotals]) -> Chart:
    points = sorted((row.key or "", float(row.cost or 0)) for row in by_day)
    return Chart("Spend by UTC day (USD)", points)


def records_table(records: list[UsageRecord]) -> Table:
    columns = [Column("time", "Time (UTC)", "time"), Column("user", "User", "text"), Column("model", "Model", "text"),
               Column("kind", "Kind", "text"), Column("session_id", "Session", "text"),
               Column("prompt_tokens", "Prompt"), Column("completion_tokens", "Completion"),
               Column("cost", "Cost (USD)", "usd"), Column("outcome", "Outcome", "text")]  # fmt: skip
    rows = [{"time": format_time(r.time), "user": r.user, "model": r.model_used or r.model_requested, "kind": r.kind,
             "session_id": r.session_id, "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
             "cost": r.cost, "outcome": r.outcome, "record_id": r.record_id} for r in records]  # fmt: skip
    return Table("recent", f"Latest {len(rows)} calls", columns, rows, links={"user": user_link})


def user_link(user: Any) -> str | None:
    return None if user is None else url("users", user)


def dimension_link(key: str) -> Callable[[Any], str | None]:
    return lambda value: None if value is None else url("dimensions", key, value)


def capped(rows: list[UsageTotals]) -> tuple[list[UsageTotals], str]:
    if len(rows) <= MAX_ROWS:
        return rows, ""
    return rows[:MAX_ROWS], f"The {MAX_ROWS:,} highest of {len(rows):,}."


# -- the pages --------------------------------------------------------------------------------------


def overview(store: UsageStore, period: Period, dimension: str = "provider") -> Page:
    """Spend, requests and tokens of the period; spend by day; top users; split by model, kind and a dimension."""
    dimension = dimension_name(dimension)
    keys = ("day", "model", "kind")
    span: dict[str, Any] = {"since": period.since, "until": period.until}
    rows = queries.breakdown(store, keys, **span)
    by_user = queries.rollup(queries.breakdown(store, ["user"], **span), 0)
    # The dimension in a read of its own: crossed with day, model and kind, a key of many values (a tenant)
    # would multiply the groups to add up in Python.
    by_dimension = (queries.rollup(rows, keys.index(dimension)) if dimension in keys
                    else queries.rollup(queries.breakdown(store, [dimension], **span), 0))  # fmt: skip
    by_day = queries.rollup(rows, 0)
    page = Page("overview", "Overview", period, stats(queries.rollup(rows, None)[0]))
    page.stats.append(("users", "Users", len(by_user)))
    page.charts.append(spend_chart(by_day))
    page.tables += [
        totals_table("top_users", f"Top {TOP} users", "user", "User", by_user[:TOP], links={"user": user_link}),
        totals_table("models", "By model", "model", "Model", queries.rollup(rows, 1),
                     links={"model": dimension_link("model")}),
        totals_table("kinds", "By kind", "kind", "Kind", queries.rollup(rows, 2),
                     links={"kind": dimension_link("kind")}),
        totals_table("dimension", f"Top {TOP} by {dimension.removeprefix(METADATA)}", dimension,
                     dimension_label(dimension), by_dimension[:TOP],
                     links={dimension: dimension_link(dimension)}),
        totals_table("by_day", "By UTC day", "day", "Day", sorted(by_day, key=lambda r: r.key or "", reverse=True)),
    ]  # fmt: skip
    return page


def users(store: UsageStore, period: Period) -> Page:
    """Every user of the period by spend."""
    rows, note = capped(queries.rollup(queries.breakdown(store, ["user"], since=period.since, until=period.until), 0))
    page = Page("users", "Users", period)
    page.tables.append(totals_table("users", "Users by spend", "user", "User", rows, links={"user": user_link},
                                    note=note))  # fmt: skip
    return page


def user(store: UsageStore, period: Period, user_id: str) -> Page:
    """One user: spend over time, models, sessions and the latest calls."""
    where = {"user": user_id}
    span: dict[str, Any] = {"since": period.since, "until": period.until}
    rows = queries.breakdown(store, ["day", "model", "session"], where=where, **span)
    by_day = queries.rollup(rows, 0)
    page = Page("user", f"User {user_id}", period, stats(queries.rollup(rows, None)[0]))
    page.charts.append(spend_chart(by_day))
    sessions, note = capped(queries.rollup(rows, 2))
    page.tables += [
        totals_table("models", "Models", "model", "Model", queries.rollup(rows, 1)),
        totals_table("sessions", "Sessions", "session", "Session", sessions, note=note),
        records_table(queries.recent_records(store, RECENT, where=where, **span)),
        totals_table("by_day", "By UTC day", "day", "Day", sorted(by_day, key=lambda r: r.key or "", reverse=True)),
    ]
    return page


def dimension(store: UsageStore, period: Period, key: Any) -> Page:
    """Every value of a dimension by spend."""
    key = dimension_name(key)
    rows, note = capped(queries.rollup(queries.breakdown(store, [key], since=period.since, until=period.until), 0))
    page = Page("dimension", f"By {key.removeprefix(METADATA)}", period)
    title = f"Values of {key.removeprefix(METADATA)}"
    page.tables.append(totals_table("values", title, key, dimension_label(key), rows, links={key: dimension_link(key)},
                                    note=note))  # fmt: skip
    return page


def dimension_value(store: UsageStore, period: Period, key: Any, value: str) -> Page:
    """One value of a dimension: spend over time, its users and the latest calls."""
    key = dimension_name(key)
    where = {key: value}
    span: dict[str, Any] = {"since": period.since, "until": period.until}
    by_day_user = queries.breakdown(store, ["day", "user"], where=where, **span)
    by_day = queries.rollup(by_day_user, 0)
    page = Page(
        "dimension_value", f"{key.removeprefix(METADATA)}: {value}", period, stats(queries.rollup(by_day_user, None)[0])
    )
    page.charts.append(spend_chart(by_day))
    by_user, note = capped(queries.rollup(by_day_user, 1))
    page.tables += [
        totals_table("users", "Users", "user", "User", by_user, links={"user": user_link}, note=note),
        records_table(queries.recent_records(store, RECENT, where=where, **span)),
    ]
    return page


def reconciliation(store: UsageStore, period: Period) -> Page:
    """Billed against reported cost: the drift per user and the records still waiting for their billed cost."""
    by_user = queries.rollup(queries.breakdown(store, ["user"], since=period.since, until=period.until), 0)
    total = queries.rollup([((), row) for row in by_user], None)[0]
    pending = queries.unreconciled(store, since=period.since)
    page = Page("reconciliation", "Reconciliation", period)
    page.stats += [("cost", "Cost (billed where reconciled)", total.cost),
                   ("reported_cost", "Reported cost", total.reported_cost), ("drift", "Drift", _drift(total)),
                   ("reconciled", "Reconciled records", total.reconciled),
                   ("unreconciled", "Not yet reconciled", pending),
                   ("user_mismatches", "User mismatches", total.user_mismatches)]  # fmt: skip
    rows = [{"user": row.key, "requests": row.requests, "reconciled": row.reconciled,
             "reported_cost": row.reported_cost, "cost": row.cost, "drift": _drift(row),
             "user_mismatches": row.user_mismatches}
            for row in by_user if row.reconciled]  # fmt: skip
    rows.sort(key=lambda r: abs(r["drift"] or Decimal(0)), reverse=True)  # type: ignore[arg-type,return-value]
    columns = [Column("user", "User", "text"), Column("requests", "Requests"), Column("reconciled", "Reconciled"),
               Column("reported_cost", "Reported (USD)", "usd"), Column("cost", "Billed where reconciled (USD)", "usd"),
               Column("drift", "Drift (USD)", "usd"), Column("user_mismatches", "User mismatches")]  # fmt: skip
    shown, note = rows[:MAX_ROWS], ("" if len(rows) <= MAX_ROWS else f"The {MAX_ROWS:,} largest drifts.")
    page.tables.append(Table("drift", "Drift per user (reconciled users)", columns, shown, {"user": user_link}, note))
    page.notes.append(
        "Run `openrouter-attribution reconcile --db ...` to fetch the billed cost of the records waiting."
    )
    return page


def _drift(row: UsageTotals) -> Decimal | None:
    if row.cost is None or row.reported_cost is None:
        return None
    return row.cost - row.reported_cost


def budgets(store: UsageStore, now: float, budgets: Sequence[UserBudget]) -> Page:
    """Each key's spend and requests in its budget's current window against its limits (one table per
    budget: users, tenants, ...), and the budget alerts fired.

    Read from the records (reservations of calls in flight are not shown: reading them is a budget
    backend's write transaction, and the dashboard never writes).
    """
    page = Page("budgets", "Budgets", None)
    if not budgets:
        page.notes.append("No budget given: pass budget=UserBudget(...) (or several) to create_app, the ones your "
                          "models use, to see each user's or tenant's spend against its limits.")  # fmt: skip
    for number, budget in enumerate(budgets):
        label = "User" if budget.scope == "user" else dimension_label(budget.scope)
        rows = _windows(store, now, budget)
        columns = [Column("key", label, "text"), Column("period", "Window", "text"),
                   Column("spent", "Spent (USD)", "usd"),
                   Column("max_cost", "Limit (USD)", "usd"), Column("remaining_cost", "Remaining (USD)", "usd"),
                   Column("requests", "Requests"), Column("max_requests", "Request limit"),
                   Column("used_percent", "Used %", "text"), Column("resets", "Resets (UTC)", "time")]  # fmt: skip
        link = user_link if budget.scope == "user" else dimension_link(budget.scope)
        name = "budgets" if number == 0 else f"budgets_{number + 1}"
        title = f"{label}s in their current window ({budget.scope} budget), most used first"
        page.tables.append(Table(name, title, columns, rows[:MAX_ROWS], {"key": link}))
    page.tables.append(_alerts_table(store))
    return page


def _windows(store: UsageStore, now: float, budget: UserBudget) -> list[dict[str, Any]]:
    """The rows of one budget's table: every key with records in its current window, most used first."""
    used = [budget, *(budget.limits.values() if isinstance(budget.limits, Mapping) else ())]
    rows = []
    for period in dict.fromkeys(b.period for b in used):
        start, reset = window(period, now)
        for row in queries.rollup(queries.breakdown(store, [budget.scope], since=start or None), 0):
            limits = budget.for_user(row.key)
            if limits.period != period:
                continue
            spent = row.cost or Decimal(0)
            rows.append({"key": row.key, "period": period, "spent": spent, "max_cost": limits.max_cost,
                         "remaining_cost": None if limits.max_cost is None else limits.max_cost - spent,
                         "requests": row.requests, "max_requests": limits.max_requests,
                         "used_percent": _percent(spent, row.requests, limits),
                         "resets": None if reset is None else format_time(reset)})  # fmt: skip
    rows.sort(key=lambda r: r["used_percent"] or 0, reverse=True)
    return rows


def _alerts_table(store: UsageStore) -> Table:
    """The budget alerts fired (newest first), as every process's ``on_alert`` received them once."""
    columns = [Column("fired_at", "Fired (UTC)", "time"), Column("scope", "Scope", "text"),
               Column("key", "Key", "text"), Column("kind", "Of", "text"), Column("percent", "At %", "text"),
               Column("spent", "Spent", "text"), Column("limit", "Limit", "text"), Column("period", "Window", "text"),
               Column("resets_at", "Resets (UTC)", "time")]  # fmt: skip
    try:
        fired = alerts_fired(store)
    except ConfigurationError:  # a store that keeps no alerts (the in-memory one)
        fired = []
    rows = [{"fired_at": _iso(a.fired_at), "scope": a.scope, "key": a.key, "kind": a.kind,
             "percent": round(100 * a.fraction, 1), "spent": a.spent, "limit": a.limit, "period": a.period,
             "resets_at": _iso(a.resets_at)} for a in reversed(fired)]  # fmt: skip
    return Table("alerts", "Budget alerts fired, newest first", columns, rows[:MAX_ROWS])


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment.timestamp())


def _percent(spent: Decimal, requests: int, limits: UserBudget) -> float | None:
    shares = []
    if limits.max_cost:
        shares.append(float(spent / limits.max_cost))
    if limits.max_requests:
        shares.append(requests / limits.max_requests)
    return round(100 * max(shares), 1) if shares else None
