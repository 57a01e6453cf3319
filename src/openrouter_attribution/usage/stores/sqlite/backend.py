"""Budgets and reconciliation on an SQLite ledger: the SQL behind ``budget=`` and ``reconcile``.

Atomicity of a budget check: the check and the reservation run in one ``BEGIN IMMEDIATE`` transaction
on the store's write connection. ``BEGIN IMMEDIATE`` takes the database's write lock before the first
read, so no other connection of any process (ledger writers included) can commit between the read and
the insert: two processes can never both take the last slot. A process that finds the lock held waits
up to the store's ``busy_timeout``.

Spend per window: the first budgeted call on a ledger installs triggers that keep ``budget_spend``,
one row per user and UTC day with the spend in pico-dollars and the requests, up to date with every
insert, delete and cost update of ``usage_records`` (by any writer, in the writer's own transaction),
and fills it from the records already there. A reserve step then reads one row per day of its window
instead of summing the user's records, so its cost does not grow with the user's history; each record
written costs the writer about 3 µs more. Ledgers that never use a budget have no triggers. Pico-dollars
(``ROUND(CAST(cost AS REAL) * 1e12)``) are exact for costs with up to 12 decimals and below 9,000 USD a
record, which OpenRouter's costs are; reports keep their exact decimal sums.

Settles are gathered (:class:`~openrouter_attribution.usage.budgets.settles.SettleQueue`) and applied inside the
next reserve transaction.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from openrouter_attribution.usage.budgets.budget import BudgetCheck, BudgetUsage, Reservation
from openrouter_attribution.usage.budgets.keys import SCOPE_MARK, held_key, store_key
from openrouter_attribution.usage.budgets.settles import Settle, SettleQueue, SweepClock
from openrouter_attribution.usage.records import UsageStoreError, format_cost
from openrouter_attribution.usage.stores.sqlite.schema import padded, page_sql

if TYPE_CHECKING:
    from openrouter_attribution.usage.budgets.alerts import BudgetAlert
    from openrouter_attribution.usage.reconcile import Billed, Candidate
    from openrouter_attribution.usage.stores.sqlite.store import SQLiteUsageStore

__all__ = ["SQLiteBackend"]

_CLEANUP = (
    "DELETE FROM budget_reservations WHERE user_key = ? AND (expires_at <= ? OR (record_id IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM usage_records u WHERE u.record_id = budget_reservations.record_id)))"
)
_PICO = Decimal(10) ** -12
_DAY = 86400

_RECORD_PICO = "COALESCE(CAST(ROUND(CAST(COALESCE({r}.billed_cost, {r}.cost) AS REAL) * 1e12) AS INTEGER), 0)"
_ADD = ("INSERT INTO budget_spend (user_key, day, pico, requests) VALUES (COALESCE(NEW.user, ''), "
        f"CAST(NEW.time / {_DAY} AS INTEGER), {_RECORD_PICO.format(r='NEW')}, 1) "
        "ON CONFLICT (user_key, day) DO UPDATE SET pico = pico + excluded.pico, requests = requests + 1;")  # fmt: skip
_SUBTRACT = (f"UPDATE budget_spend SET pico = pico - {_RECORD_PICO.format(r='OLD')}, requests = requests - 1 "
             f"WHERE user_key = COALESCE(OLD.user, '') AND day = CAST(OLD.time / {_DAY} AS INTEGER);")  # fmt: skip
# The same per metadata value, under the store key of its scope (budgets.keys.store_key:
# "\x1fmetadata.<key>\x1f<value>"); metadata that is not a JSON object of strings adds nothing.
_SCOPE_KEY = "char(31) || 'metadata.' || j.key || char(31) || j.value"
_SCOPES = "json_each(CASE WHEN json_valid({r}.metadata) THEN {r}.metadata END) j WHERE j.type = 'text'"
_ADD_SCOPES = (f"INSERT INTO budget_spend (user_key, day, pico, requests) SELECT {_SCOPE_KEY}, "
               f"CAST(NEW.time / {_DAY} AS INTEGER), {_RECORD_PICO.format(r='NEW')}, 1 "
               f"FROM {_SCOPES.format(r='NEW')} ON CONFLICT (user_key, day) "
               "DO UPDATE SET pico = pico + excluded.pico, requests = requests + 1;")  # fmt: skip
_SUBTRACT_SCOPES = (f"UPDATE budget_spend SET pico = pico - {_RECORD_PICO.format(r='OLD')}, requests = requests - 1 "
                    f"WHERE day = CAST(OLD.time / {_DAY} AS INTEGER) AND user_key IN "
                    f"(SELECT {_SCOPE_KEY} FROM {_SCOPES.format(r='OLD')});")  # fmt: skip
_TRIGGERS = (
    f"CREATE TRIGGER IF NOT EXISTS budget_spend_insert AFTER INSERT ON usage_records BEGIN {_ADD} {_ADD_SCOPES} END",
    "CREATE TRIGGER IF NOT EXISTS budget_spend_delete AFTER DELETE ON usage_records "
    f"BEGIN {_SUBTRACT} {_SUBTRACT_SCOPES} END",
    "CREATE TRIGGER IF NOT EXISTS budget_spend_update AFTER UPDATE OF user, time, cost, billed_cost, metadata "
    f"ON usage_records BEGIN {_SUBTRACT} {_SUBTRACT_SCOPES} {_ADD} {_ADD_SCOPES} END",
)
_HAS_TRIGGERS = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'budget_spend_insert'"
_FILL = (
    "INSERT INTO budget_spend (user_key, day, pico, requests) "
    f"SELECT COALESCE(user, ''), CAST(time / {_DAY} AS INTEGER), SUM({_RECORD_PICO.format(r='usage_records')}), "
    "COUNT(*) FROM usage_records GROUP BY 1, 2",
    "INSERT INTO budget_spend (user_key, day, pico, requests) "
    f"SELECT {_SCOPE_KEY}, CAST(u.time / {_DAY} AS INTEGER), SUM({_RECORD_PICO.format(r='u')}), COUNT(*) "
    f"FROM usage_records u, {_SCOPES.format(r='u')} GROUP BY 1, 2",
)
# Spend and requests of one key from the day rows of the window, and what its calls in flight hold. The
# shared budget of the calls whose metadata lacks a scope's key has no rollup (the triggers cannot know which
# keys are budgeted): it reads the window's records (only those calls pay for it).
_SPENT = (
    "(SELECT SUM(pico) AS s, COALESCE(SUM(requests), 0) AS n FROM budget_spend WHERE user_key = :key AND day >= :day)"
)
_SPENT_WITHOUT = (f"(SELECT SUM({_RECORD_PICO.format(r='u')}) AS s, COUNT(*) AS n FROM usage_records u "
                  "WHERE u.time >= :since AND json_extract(u.metadata, :path) IS NULL)")  # fmt: skip
_USAGE_OF = (
    "SELECT a.s AS spent, a.n AS requests, b.s AS held, b.n AS in_flight FROM {spent} a, "
    "(SELECT SUM(ROUND(CAST(amount AS REAL) * 1e12) * slots) AS s, COALESCE(SUM(slots), 0) AS n "
    "FROM budget_reservations r WHERE user_key = :held AND created_at >= :since AND expires_at > :now "
    "AND (record_id IS NULL OR NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.record_id = r.record_id))) b"
)
_USAGE = {False: _USAGE_OF.format(spent=_SPENT), True: _USAGE_OF.format(spent=_SPENT_WITHOUT)}
"""By whether the key is the shared budget of calls without a metadata key."""
_FITS = ("((:max_pico IS NULL OR COALESCE(w.spent, 0) + COALESCE(w.held, 0) + {n} * :amount_pico <= :max_pico) "
         "AND (:max_requests IS NULL OR w.requests + w.in_flight + {n} <= :max_requests))")  # fmt: skip
# The check and the insert in one statement (inside BEGIN IMMEDIATE): the lease asked for while room for twice
# as many calls is left, else one call while it fits, else nothing.
_TAKE_OF = (
    "INSERT INTO budget_reservations (id, user_key, amount, slots, created_at, expires_at) "
    "SELECT :id, :held, :amount, g.n, :now, :expires FROM (SELECT CASE "
    f"WHEN :slots > 1 AND {_FITS.format(n='2 * :slots')} THEN :slots WHEN {_FITS.format(n='1')} THEN 1 ELSE 0 END AS n "
    "FROM ({usage}) AS w) AS g WHERE g.n > 0 RETURNING slots"
)
_TAKE = {without: _TAKE_OF.format(usage=usage) for without, usage in _USAGE.items()}
_RELEASE = "DELETE FROM budget_reservations WHERE user_key = ? AND id = ?"
# A call whose record is not stored yet keeps its share, as a reservation linked to the record.
_LINK = (
    "INSERT OR IGNORE INTO budget_reservations (user_key, id, amount, slots, created_at, expires_at, record_id) "
    "VALUES (?, ?, ?, 1, ?, ?, ?)"
)
_IDS_AT_ONCE = 256
_CLAIM = (
    "INSERT INTO budget_alerts (scope, budget_key, kind, fraction, window_start, spent, limit_value, period, "
    "resets_at, fired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_FIRED = (
    "SELECT scope, budget_key, kind, fraction, window_start, spent, limit_value, period, resets_at, fired_at "
    "FROM budget_alerts WHERE (? IS NULL OR fired_at >= ?) AND (? IS NULL OR fired_at < ?) ORDER BY fired_at"
)
_WINDOWS = "SELECT user_key, SUM(pico), SUM(requests) FROM budget_spend WHERE day >= ?"

_PENDING = "generation_id IS NOT NULL AND (reconcile_status IS NULL{retry}) AND time >= ?"
_CANDIDATE_COLUMNS = "record_id, generation_id, user, cost, time"
# Records in the inbox are never reconciled yet: they only need a generation id and the window.
_INBOX_PENDING = "generation_id IS NOT NULL AND time >= ? AND (time, record_id) > (?, ?)"
_APPLY = (
    "UPDATE usage_records SET reconcile_status = ?, billed_cost = ?, cache_discount = ?, native_prompt_tokens = ?, "
    "native_completion_tokens = ?, native_reasoning_tokens = ?, native_cached_tokens = ?, cancelled = ?, "
    "billed_user = ?, user_mismatch = ?, reconciled_at = ? WHERE record_id = ?"
)


@functools.lru_cache(maxsize=1024)
def _pico(amount: Decimal, *, up: bool) -> int:
    """``amount`` in whole pico-dollars, rounded up (what a call holds) or down (a limit): never under-counts."""
    scaled = amount.scaleb(12)
    whole = int(scaled)
    return whole + 1 if up and whole < scaled else whole


def _params(key: str, held: str, since: float, now: float) -> dict[str, object]:
    params: dict[str, object] = {"key": key, "held": held, "day": int(since // _DAY), "since": since, "now": now}
    if _without(key):
        params["path"] = '$."' + key[1 + len("metadata.") :] + '"'
    return params


def _without(key: str) -> bool:
    """Whether ``key`` is the shared budget of the calls whose metadata lacks its scope's key."""
    return key.startswith(SCOPE_MARK) and SCOPE_MARK not in key[1:]


def _usd(pico: object) -> Decimal:
    return Decimal(0) if pico is None else (Decimal(int(pico)) * _PICO).normalize()  # type: ignore[call-overload]


def _usage(row: Sequence[object], *, granted: bool = False) -> BudgetCheck:
    spent, requests, reserved, in_flight = row
    return BudgetCheck(spent=_usd(spent), requests=int(requests), reserved=_usd(reserved),  # type: ignore[call-overload]
                       in_flight=int(in_flight), granted=granted)  # type: ignore[call-overload]  # fmt: skip


@functools.lru_cache(maxsize=64)
def _granted(slots: int) -> BudgetCheck:
    """The outcome of a granted reserve step (it reports no usage: nobody reads it)."""
    return BudgetCheck(granted=True, slots=slots)


@functools.lru_cache(maxsize=16)
def _stored_sql(n: int) -> str:
    return f"SELECT record_id FROM usage_records WHERE record_id IN ({', '.join('?' * n)})"


def _stored(conn: Any, record_ids: list[str]) -> set[str]:
    """Which of ``record_ids`` are in ``usage_records``: one look-up per :data:`_IDS_AT_ONCE` ids (padded
    with copies of the last, which ``IN`` ignores), not one per id."""
    found: set[str] = set()
    for at in range(0, len(record_ids), _IDS_AT_ONCE):
        chunk = record_ids[at : at + _IDS_AT_ONCE]
        size, chunk = padded(chunk, len(chunk))
        found.update(row[0] for row in conn.execute(_stored_sql(size), chunk))
    return found


def _apply(conn: Any, settles: list[Settle]) -> None:
    """Release ``settles`` and link each call they served whose record is not stored yet (inside the
    transaction's write lock, so no record lands between the look-up and the links)."""
    conn.executemany(_RELEASE, [(s.user or "", s.id) for s in settles])
    served = [rec for s in settles for rec in s.records]
    if not served:
        return
    stored = _stored(conn, served)
    links = [(s.user or "", f"{s.id}.{i}", format_cost(s.amount), s.created_at, s.expires_at, rec)
             for s in settles for i, rec in enumerate(s.records) if rec not in stored]  # fmt: skip
    if links:
        conn.executemany(_LINK, links)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format_cost(value)


class SQLiteBackend:
    """Budget reservations and reconciliation results in an :class:`SQLiteUsageStore`."""

    scoped_budgets = True
    """Budgets of another scope than ``"user"`` are kept (budget keys of ``store_key``, the spend rollup)."""

    def __init__(self, store: SQLiteUsageStore) -> None:
        self.store = store
        self.settles = SettleQueue(self._apply_settles)
        self._sweeps = SweepClock()
        self._rollup = False

    def _ensure_rollup(self) -> None:
        """Install the spend triggers and fill ``budget_spend`` once per ledger (atomically, for every process)."""
        if self._rollup:
            return
        with self.store.transaction() as conn:
            if conn.execute(_HAS_TRIGGERS).fetchone() is None:
                conn.execute("DELETE FROM budget_spend")
                for ddl in _TRIGGERS:
                    conn.execute(ddl)
                for fill in _FILL:
                    conn.execute(fill)
        self._rollup = True

    # -- budgets -----------------------------------------------------------------------------------

    def budget_reserve(self, reservation: Reservation, *, settle_all: bool = False) -> BudgetCheck:
        """Check and reserve in one write transaction (see the module docstring)."""
        r = reservation
        key, held = store_key(r.scope, r.user), held_key(r)
        self._ensure_rollup()
        settles = self.settles.take(everything=settle_all)
        sweep = self._sweeps.due(settles)
        try:
            with self.store.transaction() as conn:
                if settles:
                    _apply(conn, settles)
                if sweep:  # expired reservations and those whose records are stored no longer count
                    conn.execute(_CLEANUP, (held, r.now))
                usage = _params(key, held, r.since, r.now)
                took = conn.execute(_TAKE[_without(key)], {
                    **usage, "id": r.id, "amount": format_cost(r.amount), "expires": r.expires_at, "slots": r.slots,
                    "max_pico": None if r.max_cost is None else _pico(r.max_cost, up=False),
                    "amount_pico": _pico(r.amount, up=True), "max_requests": r.max_requests}).fetchone()  # fmt: skip
                if took is not None:
                    return _granted(int(took[0]))
                return _usage(conn.execute(_USAGE[_without(key)], usage).fetchone())  # why it was refused
        except BaseException as err:
            self.settles.restore(settles)
            if isinstance(err, sqlite3.Error):  # locked beyond busy_timeout, disk full, ...: the call is not sent
                raise UsageStoreError(f"cannot reserve budget in the ledger {self.store.path}: {err}") from err
            raise

    def budget_settle(self, reservation: Reservation, record_ids: Sequence[str], *, after: float = 0.0) -> None:
        """Queue the settle: applied by the next reserve step or within ``SettleQueue.delay`` seconds (once
        ``after`` has passed)."""
        key = held_key(reservation)
        self.settles.add(Settle(key, reservation.id, tuple(record_ids), reservation.amount, reservation.now,
                                reservation.expires_at, after))  # fmt: skip

    def _apply_settles(self, settles: list[Settle]) -> None:
        with self.store.transaction() as conn:
            _apply(conn, settles)
        self._sweeps.linked(settles)

    def close(self) -> None:
        """Apply the settles still pending."""
        self.settles.close()

    def budget_usage(
        self, user: str | None, since: float, now: float, *, scope: str = "user", period: str = "day"
    ) -> BudgetUsage:
        """Records of ``user`` (the ``scope``'s key) in the window and reservations of its budget of ``period``
        (a read, after this process's settles)."""
        self._ensure_rollup()
        self.settles.flush()
        # In a write transaction: it folds the inbox first, so the spend rollup has every record.
        with self.store.transaction() as conn:
            key = store_key(scope, user)
            params = _params(key, f"{key}{SCOPE_MARK}{period}", since, now)
            check = _usage(conn.execute(_USAGE[_without(key)], params).fetchone())
        return BudgetUsage(
            spent=check.spent, requests=check.requests, reserved=check.reserved, in_flight=check.in_flight
        )

    def budget_alert_claim(self, key: str, alert: BudgetAlert) -> bool:
        """Insert the alert's row unless one of the same scope, store ``key``, kind, fraction and window is
        there; returns whether this call inserted it (then it is this process's to fire)."""
        row = (alert.scope, key, alert.kind, alert.fraction, alert.window_start.timestamp(), str(alert.spent),
               str(alert.limit), alert.period, None if alert.resets_at is None else alert.resets_at.timestamp(),
               alert.fired_at.timestamp())  # fmt: skip
        try:
            with self.store.transaction() as conn:
                return conn.execute(_CLAIM, row).rowcount == 1
        except sqlite3.Error as err:
            raise UsageStoreError(f"cannot claim a budget alert in the ledger {self.store.path}: {err}") from err

    def budget_alerts_fired(self, since: float | None, until: float | None) -> list[tuple[Any, ...]]:
        """The rows of the alerts fired in ``[since, until)``, oldest first."""
        return self.store._fetch(_FIRED, [since, since, until, until])

    def budget_windows(self, scope: str, since: float) -> list[tuple[str, Decimal, int]]:
        """``(store key, spent, requests)`` of every key of ``scope`` with records since ``since`` (a UTC
        day boundary, or 0), from the spend rollup."""
        self._ensure_rollup()
        self.settles.flush()
        with self.store.transaction() as conn:  # folds the inbox first
            day = int(since // _DAY)
            if scope == "user":
                rows = conn.execute(_WINDOWS + " AND substr(user_key, 1, 1) <> ? GROUP BY user_key", (day, SCOPE_MARK))
            else:
                prefix = store_key(scope, None)
                within = " AND (user_key = ? OR substr(user_key, 1, ?) = ?) GROUP BY user_key"
                rows = conn.execute(_WINDOWS + within, (day, prefix, len(prefix) + 1, prefix + SCOPE_MARK))
            found = rows.fetchall()
        return [(key, _usd(pico), int(n)) for key, pico, n in found]

    # -- reconciliation ----------------------------------------------------------------------------

    def reconcile_pending(self, since: float | None, *, retry_not_found: bool = False) -> int:
        """How many records with a generation id are not reconciled yet."""
        sql = "SELECT COUNT(*) FROM usage_all WHERE " + _pending(retry_not_found)
        return int(self.store._fetch(sql, [since or 0.0])[0][0])

    def reconcile_candidates(
        self, since: float | None, after: tuple[float, str] | None, limit: int, *, retry_not_found: bool = False
    ) -> list[Candidate]:
        """The next ``limit`` unreconciled records after ``after`` (``(time, record_id)``), in time order."""
        from openrouter_attribution.usage.reconcile import Candidate

        low = after or (float("-inf"), "")
        pending = _pending(retry_not_found) + " AND (time, record_id) > (?, ?)"
        sql = page_sql(_CANDIDATE_COLUMNS, pending, _INBOX_PENDING)
        arm = [since or 0.0, low[0], low[1]]
        rows = self.store._fetch(sql, [*arm, *arm, limit])
        return [Candidate(record_id=row[0], generation_id=row[1], user=row[2],
                          cost=None if row[3] is None else Decimal(row[3]), time=float(row[4]))
                for row in rows]  # fmt: skip

    def reconcile_apply(self, results: Sequence[Billed]) -> None:
        """Store reconciliation results in one transaction."""
        rows = [(b.status, _text(b.billed_cost), _text(b.cache_discount), b.native_prompt_tokens,
                 b.native_completion_tokens, b.native_reasoning_tokens, b.native_cached_tokens,
                 None if b.cancelled is None else int(b.cancelled), b.billed_user,
                 None if b.user_mismatch is None else int(b.user_mismatch), b.at, b.record_id)
                for b in results]  # fmt: skip
        if rows:
            with self.store.transaction() as conn:
                conn.executemany(_APPLY, rows)


def _pending(retry_not_found: bool) -> str:
    return _PENDING.format(retry=" OR reconcile_status = 'not_found'" if retry_not_found else "")
