"""Budgets and reconciliation on an SQLite ledger: the SQL behind ``budget=`` and ``reconcile``.

Atomicity of a budget check: the check and the reservation run in one ``BEGIN IMMEDIATE`` transaction
on the store's write connection. ``BEGIN IMMEDIATE`` takes the database's write lock before the first
read, so no other connection of any process (ledger writers included) can commit between the read and
the insert: two processes can never both take the last slot. A process that finds the lock held waits
up to the store's ``busy_timeout``.

Amounts are exact decimal TEXT, summed with the store's ``usage_decimal_sum`` aggregate.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from openrouter_attribution.usage.budget import BudgetCheck, BudgetUsage, Reservation
from openrouter_attribution.usage.records import format_cost

if TYPE_CHECKING:
    from openrouter_attribution.usage.reconcile import Billed, Candidate
    from openrouter_attribution.usage.sqlite import SQLiteUsageStore

__all__ = ["SQLiteBilling"]

_CLEANUP = (
    "DELETE FROM budget_reservations WHERE user_key = ? AND (expires_at <= ? OR (record_id IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM usage_records u WHERE u.record_id = budget_reservations.record_id)))"
)
# Records and reservations of one user in a window, read together.
_USAGE = (
    "SELECT a.s, a.n, b.s, b.n FROM "
    "(SELECT usage_decimal_sum(COALESCE(billed_cost, cost)) AS s, COUNT(*) AS n FROM usage_records "
    "WHERE {user} AND time >= ?) a, "
    "(SELECT usage_decimal_sum(amount) AS s, COUNT(*) AS n FROM budget_reservations r WHERE user_key = ? "
    "AND created_at >= ? AND expires_at > ? AND (record_id IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM usage_records u WHERE u.record_id = r.record_id))) b"
)
_USAGE_SQL = {True: _USAGE.format(user="user IS NULL"), False: _USAGE.format(user="user = ?")}
_INSERT = "INSERT INTO budget_reservations (id, user_key, amount, created_at, expires_at) VALUES (?, ?, ?, ?, ?)"
_DELETE_SETTLED = (
    "DELETE FROM budget_reservations WHERE id = ? AND EXISTS (SELECT 1 FROM usage_records WHERE record_id = ?)"
)
_LINK = "UPDATE budget_reservations SET record_id = ? WHERE id = ?"
_RELEASE = "DELETE FROM budget_reservations WHERE id = ?"

_PENDING = "generation_id IS NOT NULL AND (reconcile_status IS NULL{retry}) AND time >= ?"
_CANDIDATES = (
    "SELECT record_id, generation_id, user, cost, time FROM usage_records WHERE {pending} "
    "AND (time, record_id) > (?, ?) ORDER BY time, record_id LIMIT ?"
)
_APPLY = (
    "UPDATE usage_records SET reconcile_status = ?, billed_cost = ?, cache_discount = ?, native_prompt_tokens = ?, "
    "native_completion_tokens = ?, native_reasoning_tokens = ?, native_cached_tokens = ?, cancelled = ?, "
    "billed_user = ?, user_mismatch = ?, reconciled_at = ? WHERE record_id = ?"
)


def _params(user: str | None, since: float, now: float) -> tuple[object, ...]:
    head: tuple[object, ...] = (since,) if user is None else (user, since)
    return (*head, user or "", since, now)


def _usage(row: Sequence[object], *, granted: bool = False) -> BudgetCheck:
    spent, requests, reserved, in_flight = row
    return BudgetCheck(spent=Decimal(str(spent)) if spent is not None else Decimal(0), requests=int(requests),  # type: ignore[call-overload]
                       reserved=Decimal(str(reserved)) if reserved is not None else Decimal(0),
                       in_flight=int(in_flight), granted=granted)  # type: ignore[call-overload]  # fmt: skip


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format_cost(value)


class SQLiteBilling:
    """Budget reservations and reconciliation results in an :class:`SQLiteUsageStore`."""

    def __init__(self, store: SQLiteUsageStore) -> None:
        self.store = store

    # -- budgets -----------------------------------------------------------------------------------

    def budget_reserve(self, reservation: Reservation) -> BudgetCheck:
        """Check and reserve in one write transaction (see the module docstring)."""
        r = reservation
        key = r.user or ""
        with self.store.transaction() as conn:
            conn.execute(_CLEANUP, (key, r.now))
            check = _usage(conn.execute(_USAGE_SQL[r.user is None], _params(r.user, r.since, r.now)).fetchone())
            granted = (r.max_cost is None or check.spent + check.reserved + r.amount <= r.max_cost) and (
                r.max_requests is None or check.requests + check.in_flight + 1 <= r.max_requests
            )
            if granted:
                conn.execute(_INSERT, (r.id, key, format_cost(r.amount), r.now, r.expires_at))
        if not granted:
            return check
        return BudgetCheck(spent=check.spent, requests=check.requests, reserved=check.reserved,
                           in_flight=check.in_flight, granted=True)  # fmt: skip

    def budget_settle(self, reservation_id: str, record_id: str | None) -> None:
        """Release the reservation once its record is stored; until then link it to the record."""
        with self.store.transaction() as conn:
            if record_id is None:
                conn.execute(_RELEASE, (reservation_id,))
            elif conn.execute(_DELETE_SETTLED, (reservation_id, record_id)).rowcount == 0:
                conn.execute(_LINK, (record_id, reservation_id))

    def budget_usage(self, user: str | None, since: float, now: float) -> BudgetUsage:
        """Records and reservations of ``user`` in the window (a read)."""
        check = _usage(self.store._fetch(_USAGE_SQL[user is None], _params(user, since, now))[0])
        return BudgetUsage(spent=check.spent, requests=check.requests, reserved=check.reserved,
                           in_flight=check.in_flight)  # fmt: skip

    # -- reconciliation ----------------------------------------------------------------------------

    def reconcile_pending(self, since: float | None, *, retry_not_found: bool = False) -> int:
        """How many records with a generation id are not reconciled yet."""
        sql = "SELECT COUNT(*) FROM usage_records WHERE " + _pending(retry_not_found)
        return int(self.store._fetch(sql, [since or 0.0])[0][0])

    def reconcile_candidates(
        self, since: float | None, after: tuple[float, str] | None, limit: int, *, retry_not_found: bool = False
    ) -> list[Candidate]:
        """The next ``limit`` unreconciled records after ``after`` (``(time, record_id)``), in time order."""
        from openrouter_attribution.usage.reconcile import Candidate

        low = after or (float("-inf"), "")
        sql = _CANDIDATES.format(pending=_pending(retry_not_found))
        rows = self.store._fetch(sql, [since or 0.0, low[0], low[1], limit])
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
