"""Budgets and reconciliation on a PostgreSQL ledger: the SQL behind ``budget=`` and ``reconcile``.

Atomicity of a budget check: ``budget_reserve(...)``, a PL/pgSQL function created by the schema
migration, runs as one statement (one round trip, its own transaction on the store's autocommit
connection). It first takes a transaction-scoped advisory lock keyed by the user
(``pg_advisory_xact_lock(class, hashtext(user))``), so the reserve steps of one user run one at a
time on every connection of every host, while other users proceed in parallel (two users whose
hashes collide only wait for each other). In READ COMMITTED, each statement of a volatile function
takes a fresh snapshot, so the read that follows the lock sees every reservation committed by the
previous holder; records and reservations are read in one statement, hence one snapshot, so a record
committed meanwhile by a ledger writer is never missed on both sides. A row lock would need a row per
user and SERIALIZABLE would need retries; the advisory lock needs neither.

Cost per call: the settles of this process's ended calls travel with its next reserve step (see
:class:`~openrouter_attribution.usage.budgets.settles.SettleQueue`), so a call costs one round trip. Reservations
are committed with ``synchronous_commit = off``: visibility to every other session, and so the
atomicity above, is unchanged; only if the PostgreSQL server itself crashes within a fraction of a
second of a commit can a reservation be lost (the calls' usage records stay durable). That halves the
client CPU of a reserve step.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from openrouter_attribution.usage.budgets.budget import BudgetCheck, BudgetUsage, Reservation
from openrouter_attribution.usage.budgets.keys import SCOPE_MARK, held_key, store_key
from openrouter_attribution.usage.budgets.settles import Settle, SettleQueue, SweepClock

if TYPE_CHECKING:
    from openrouter_attribution.usage.budgets.alerts import BudgetAlert
    from openrouter_attribution.usage.reconcile import Billed, Candidate
    from openrouter_attribution.usage.stores.postgres.store import PostgresUsageStore

__all__ = ["POSTGRES_BACKEND_MIGRATION", "POSTGRES_BUDGET_SCOPES_MIGRATION", "PostgresBackend"]

_BUDGET_LOCK_CLASS = 0x6F726162  # first key of the per-user advisory locks ("orab")

_RECORDS_WINDOW = """(SELECT COALESCE(SUM(COALESCE(u.billed_cost, u.cost)), 0) AS s, COUNT(*) AS n
             FROM usage_records u WHERE {user} AND u.time >= p_since)"""
_RESERVED_WINDOW = """(SELECT COALESCE(SUM(r.amount * r.slots), 0) AS s, COALESCE(SUM(r.slots), 0) AS n
             FROM budget_reservations r
             WHERE r.user_key = v_held AND r.created_at >= p_since AND r.expires_at > p_now
               AND (r.record_id IS NULL OR NOT EXISTS (
                    SELECT 1 FROM usage_records u WHERE u.record_id = r.record_id)))"""


def _usage_select(user: str) -> str:
    return (f"SELECT a.s, a.n, b.s, b.n INTO spent, requests, reserved, in_flight "
            f"FROM {_RECORDS_WINDOW.format(user=user)} a, {_RESERVED_WINDOW} b;")  # fmt: skip


_SETTLE_MANY = """
    -- Ended reservations go; each call they served whose record is not stored yet keeps its share, linked
    -- to its record (it counts until the record lands).
    IF p_settle_ids IS NOT NULL THEN
        DELETE FROM budget_reservations WHERE id = ANY (p_settle_ids);
    END IF;
    IF p_link_ids IS NOT NULL THEN
        INSERT INTO budget_reservations (id, user_key, amount, slots, created_at, expires_at, record_id)
        SELECT l.id, l.u, l.a, 1, l.c, l.e, l.r
        FROM unnest(p_link_ids, p_link_users, p_link_amounts, p_link_created, p_link_expires, p_link_records)
            AS l(id, u, a, c, e, r)
        WHERE NOT EXISTS (SELECT 1 FROM usage_records x WHERE x.record_id = l.r)
        ON CONFLICT (id) DO NOTHING;
    END IF;"""
_SETTLE_ARGS = (
    "p_settle_ids text[], p_link_ids text[], p_link_users text[], p_link_amounts numeric[], "
    "p_link_created double precision[], p_link_expires double precision[], p_link_records text[]"
)
_FITS = ("((p_max_cost IS NULL OR spent + reserved + {n} * p_amount <= p_max_cost) "
         "AND (p_max_requests IS NULL OR requests + in_flight + {n} <= p_max_requests))")  # fmt: skip

# A budget of another scope (its key starts with SCOPE_MARK) reads the spend rollup its triggers keep; the
# shared budget of the calls whose metadata lacks the scope's key (no second SCOPE_MARK) has no rollup (the
# triggers cannot know which keys are budgeted): it reads the window's records (only those calls pay for it).
_SCOPE_WINDOW = """IF position(chr(31) in substr(v_key, 2)) = 0 THEN
            SELECT a.s, a.n, b.s, b.n INTO spent, requests, reserved, in_flight
            FROM (SELECT COALESCE(SUM(COALESCE(u.billed_cost, u.cost)), 0) AS s, COUNT(*) AS n FROM usage_records u
                  WHERE u.time >= p_since AND (u.metadata::jsonb ->> substr(v_key, 11)) IS NULL) a, {reserved} b;
        ELSE
            SELECT a.s, a.n, b.s, b.n INTO spent, requests, reserved, in_flight
            FROM (SELECT COALESCE(SUM(s.cost), 0) AS s, COALESCE(SUM(s.requests), 0) AS n FROM budget_spend s
                  WHERE s.user_key = v_key AND s.day >= floor(p_since / 86400)) a, {reserved} b;
        END IF;"""


def _reserve_function(*, scoped: bool) -> str:
    """The reserve step; ``scoped`` (schema 4 on): with ``p_scoped`` (read the rollup of another scope) and
    ``p_held`` (the key of the budget's reservations: each period of a key holds its own)."""
    if not scoped:
        return _RESERVE_FUNCTION.format(scoped_arg="", held="v_key", by_scope="")
    by_scope = f"IF p_scoped THEN\n        {_SCOPE_WINDOW.format(reserved=_RESERVED_WINDOW)}\n    ELS"
    return _RESERVE_FUNCTION.format(scoped_arg=" p_scoped boolean, p_held text,", held="p_held", by_scope=by_scope)


_RESERVE_FUNCTION = f"""CREATE OR REPLACE FUNCTION budget_reserve(
    p_id text, p_user text, p_amount numeric, p_since double precision, p_now double precision,
    p_expires double precision, p_max_cost numeric, p_max_requests bigint, p_slots integer,
    p_cleanup boolean,{{scoped_arg}} {_SETTLE_ARGS})
RETURNS TABLE (granted boolean, spent numeric, requests bigint, reserved numeric, in_flight bigint, slots integer)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_key text := COALESCE(p_user, '');
    v_held text := {{held}};
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    {_SETTLE_MANY}
    PERFORM pg_advisory_xact_lock({_BUDGET_LOCK_CLASS}, hashtext(v_key));
    IF p_cleanup THEN
        DELETE FROM budget_reservations r WHERE r.user_key = v_held AND (r.expires_at <= p_now
            OR (r.record_id IS NOT NULL AND EXISTS (SELECT 1 FROM usage_records u WHERE u.record_id = r.record_id)));
    END IF;
    {{by_scope}}IF p_user IS NULL THEN
        {_usage_select('u."user" IS NULL')}
    ELSE
        {_usage_select('u."user" = p_user')}
    END IF;
    -- The lease asked for while room for twice as many calls is left, else one call while it fits.
    slots := CASE WHEN p_slots > 1 AND {_FITS.format(n="2 * p_slots")} THEN p_slots
                  WHEN {_FITS.format(n="1")} THEN 1 ELSE 0 END;
    granted := slots > 0;
    IF granted THEN
        INSERT INTO budget_reservations (id, user_key, amount, slots, created_at, expires_at)
        VALUES (p_id, v_held, p_amount, slots, p_now, p_expires);
    END IF;
    RETURN NEXT;
END
$fn$"""

_SETTLE_FUNCTION = f"""CREATE OR REPLACE FUNCTION budget_settle({_SETTLE_ARGS})
RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    {_SETTLE_MANY}
END
$fn$"""

POSTGRES_BACKEND_MIGRATION: tuple[str, ...] = (
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS billed_cost numeric",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS cache_discount numeric",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS native_prompt_tokens bigint",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS native_completion_tokens bigint",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS native_reasoning_tokens bigint",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS native_cached_tokens bigint",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS cancelled boolean",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS billed_user text",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS user_mismatch boolean",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS reconcile_status text",
    "ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS reconciled_at double precision",
    "CREATE INDEX IF NOT EXISTS usage_records_unreconciled ON usage_records (time, record_id) "
    "WHERE generation_id IS NOT NULL AND reconcile_status IS NULL",
    """CREATE TABLE IF NOT EXISTS budget_reservations (
        id text COLLATE "C" PRIMARY KEY,
        user_key text NOT NULL,
        amount numeric NOT NULL,
        slots integer NOT NULL DEFAULT 1,
        created_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        record_id text COLLATE "C"
    )""",
    "CREATE INDEX IF NOT EXISTS budget_reservations_user ON budget_reservations (user_key, created_at)",
    _reserve_function(scoped=False),
    _SETTLE_FUNCTION,
)
"""Schema step 2 -> 3 of the PostgreSQL ledger (kept here, beside the SQL that uses it)."""

# The spend rollup per metadata value: statement triggers with transition tables, one grouped upsert per
# statement in key order (concurrent writers of one tenant then lock its rows in the same order).
_SCOPE_ROWS = """SELECT chr(31) || 'metadata.' || j.key || chr(31) || j.value, floor(n.time / 86400)::bigint,
        SUM(COALESCE(n.billed_cost, n.cost, 0)), COUNT(*)
    FROM {rows} n, jsonb_each_text(CASE WHEN jsonb_typeof(n.metadata::jsonb) = 'object' THEN n.metadata::jsonb END) j
    GROUP BY 1, 2 ORDER BY 1, 2"""
_SPEND_TRIGGERS = (
    f"""CREATE OR REPLACE FUNCTION budget_spend_add() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO budget_spend (user_key, day, cost, requests) {_SCOPE_ROWS.format(rows="new_rows")}
    ON CONFLICT (user_key, day) DO UPDATE
        SET cost = budget_spend.cost + excluded.cost, requests = budget_spend.requests + excluded.requests;
    RETURN NULL;
END
$fn$""",
    f"""CREATE OR REPLACE FUNCTION budget_spend_subtract() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE budget_spend s SET cost = s.cost - o.cost, requests = s.requests - o.n
    FROM ({_SCOPE_ROWS.format(rows="old_rows")}) AS o(key, day, cost, n)
    WHERE s.user_key = o.key AND s.day = o.day;
    RETURN NULL;
END
$fn$""",
    "CREATE TRIGGER budget_spend_insert AFTER INSERT ON usage_records REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION budget_spend_add()",
    "CREATE TRIGGER budget_spend_delete AFTER DELETE ON usage_records REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION budget_spend_subtract()",
    "CREATE TRIGGER budget_spend_update_new AFTER UPDATE ON usage_records REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION budget_spend_add()",
    "CREATE TRIGGER budget_spend_update_old AFTER UPDATE ON usage_records REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION budget_spend_subtract()",
)

POSTGRES_BUDGET_SCOPES_MIGRATION: tuple[str, ...] = (
    # Spend and requests per budget key of another scope than "user" (budgets.keys.store_key) and UTC day,
    # kept by triggers on usage_records (a user's spend is read from the records themselves).
    """CREATE TABLE IF NOT EXISTS budget_spend (
        user_key text COLLATE "C" NOT NULL,
        day bigint NOT NULL,
        cost numeric NOT NULL,
        requests bigint NOT NULL,
        PRIMARY KEY (user_key, day)
    )""",
    # One row per alert fired (usage/budgets/alerts.py): the primary key makes it fire once in the fleet.
    """CREATE TABLE IF NOT EXISTS budget_alerts (
        scope text NOT NULL,
        budget_key text COLLATE "C" NOT NULL,
        kind text NOT NULL,
        fraction double precision NOT NULL,
        window_start double precision NOT NULL,
        spent numeric NOT NULL,
        limit_value numeric NOT NULL,
        period text NOT NULL,
        resets_at double precision,
        fired_at double precision NOT NULL,
        PRIMARY KEY (scope, budget_key, kind, fraction, window_start)
    )""",
    "CREATE INDEX IF NOT EXISTS budget_alerts_fired ON budget_alerts (fired_at)",
    *_SPEND_TRIGGERS,
    f"INSERT INTO budget_spend (user_key, day, cost, requests) {_SCOPE_ROWS.format(rows='usage_records')}",
    "DROP FUNCTION IF EXISTS budget_reserve(text, text, numeric, double precision, double precision, "
    "double precision, numeric, bigint, integer, boolean, text[], text[], text[], numeric[], double precision[], "
    "double precision[], text[])",
    _reserve_function(scoped=True),
)
"""Schema step: budgets by metadata value (the spend rollup) and budget alerts."""

_SETTLE_PARAMS = "%s::text[], %s::text[], %s::text[], %s::numeric[], %s::float8[], %s::float8[], %s::text[]"
_RESERVE = f"SELECT * FROM budget_reserve(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {_SETTLE_PARAMS})"
_SETTLE = f"SELECT budget_settle({_SETTLE_PARAMS})"
_USAGE = {
    True: 'SELECT COALESCE(SUM(COALESCE(billed_cost, cost)), 0), COUNT(*) FROM usage_records WHERE "user" IS NULL '
    "AND time >= %s",
    False: 'SELECT COALESCE(SUM(COALESCE(billed_cost, cost)), 0), COUNT(*) FROM usage_records WHERE "user" = %s '
    "AND time >= %s",
}
_RESERVED = (
    "SELECT COALESCE(SUM(r.amount * r.slots), 0), COALESCE(SUM(r.slots), 0) FROM budget_reservations r "
    "WHERE r.user_key = %s "
    "AND r.created_at >= %s AND r.expires_at > %s AND (r.record_id IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM usage_records u WHERE u.record_id = r.record_id))"
)
_SCOPE_USAGE = (
    "SELECT COALESCE(SUM(cost), 0), COALESCE(SUM(requests), 0) FROM budget_spend WHERE user_key = %s AND day >= %s"
)
_SCOPE_USAGE_WITHOUT = (
    "SELECT COALESCE(SUM(COALESCE(billed_cost, cost)), 0), COUNT(*) FROM usage_records WHERE time >= %s "
    "AND (metadata::jsonb ->> %s) IS NULL"
)
_CLAIM = (
    "INSERT INTO budget_alerts (scope, budget_key, kind, fraction, window_start, spent, limit_value, period, "
    "resets_at, fired_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1"
)
_FIRED = (
    "SELECT scope, budget_key, kind, fraction, window_start, spent, limit_value, period, resets_at, fired_at "
    "FROM budget_alerts WHERE (%s::float8 IS NULL OR fired_at >= %s) AND (%s::float8 IS NULL OR fired_at < %s) "
    "ORDER BY fired_at"
)
_USER_WINDOWS = (
    "SELECT COALESCE(\"user\", ''), COALESCE(SUM(COALESCE(billed_cost, cost)), 0), COUNT(*) FROM usage_records "
    "WHERE time >= %s GROUP BY 1"
)
_SCOPE_WINDOWS = (
    "SELECT user_key, SUM(cost), SUM(requests) FROM budget_spend WHERE day >= %s "
    "AND (user_key = %s OR starts_with(user_key, %s)) GROUP BY user_key"
)
_PENDING = "generation_id IS NOT NULL AND (reconcile_status IS NULL{retry}) AND time >= %s"
_CANDIDATES = (
    'SELECT record_id, generation_id, "user", cost, time FROM usage_records WHERE {pending} '
    "AND (time, record_id) > (%s, %s) ORDER BY time, record_id LIMIT %s"
)
_APPLY = (
    "UPDATE usage_records SET reconcile_status = v.status, billed_cost = v.billed, cache_discount = v.discount, "
    "native_prompt_tokens = v.np, native_completion_tokens = v.nc, native_reasoning_tokens = v.nr, "
    "native_cached_tokens = v.ncached, cancelled = v.cancelled, billed_user = v.buser, "
    "user_mismatch = v.mismatch, reconciled_at = v.at FROM unnest(%s::text[], %s::text[], %s::numeric[], "
    "%s::numeric[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::bool[], %s::text[], %s::bool[], "
    "%s::float8[]) AS v(rid, status, billed, discount, np, nc, nr, ncached, cancelled, buser, mismatch, at) "
    "WHERE usage_records.record_id = v.rid"
)


class PostgresBackend:
    """Budget reservations and reconciliation results in a :class:`PostgresUsageStore`."""

    scoped_budgets = True
    """Budgets of another scope than ``"user"`` are kept (budget keys of ``store_key``, the spend rollup)."""

    def __init__(self, store: PostgresUsageStore) -> None:
        self.store = store
        self.settles = SettleQueue(self._apply_settles)
        self._sweeps = SweepClock()

    # -- budgets -----------------------------------------------------------------------------------

    def budget_reserve(self, reservation: Reservation, *, settle_all: bool = False) -> BudgetCheck:
        """One statement: lock the user, read records and reservations, insert when within the limits."""
        r = reservation
        scoped = r.scope != "user"
        user = store_key(r.scope, r.user) if scoped else r.user
        settles = self.settles.take(everything=settle_all)
        sweep = self._sweeps.due(settles)
        try:
            ((granted, spent, requests, reserved, in_flight, slots),) = self.store.execute(
                _RESERVE, (r.id, user, r.amount, r.since, r.now, r.expires_at, r.max_cost, r.max_requests, r.slots,
                           sweep, scoped, held_key(r), *_arrays(settles)))  # fmt: skip
        except BaseException:
            self.settles.restore(settles)
            raise
        return BudgetCheck(spent=Decimal(spent), requests=int(requests), reserved=Decimal(reserved),
                           in_flight=int(in_flight), granted=bool(granted), slots=int(slots))  # fmt: skip

    def budget_settle(self, reservation: Reservation, record_ids: Sequence[str], *, after: float = 0.0) -> None:
        """Queue the settle: sent with the next reserve step or within ``SettleQueue.delay`` seconds (once
        ``after`` has passed)."""
        key = held_key(reservation)
        self.settles.add(Settle(key, reservation.id, tuple(record_ids), reservation.amount, reservation.now,
                                reservation.expires_at, after))  # fmt: skip

    def _apply_settles(self, settles: list[Settle]) -> None:
        self.store.execute(_SETTLE, _arrays(settles))
        self._sweeps.linked(settles)

    def close(self) -> None:
        """Apply the settles still pending."""
        self.settles.close()

    def budget_usage(
        self, user: str | None, since: float, now: float, *, scope: str = "user", period: str = "day"
    ) -> BudgetUsage:
        """Records of ``user`` (the ``scope``'s key) in the window and reservations of its budget of ``period``
        (a read after this process's settles)."""
        self.settles.flush()
        key = store_key(scope, user)
        if scope != "user" and user is None:
            ((spent, requests),) = self.store._fetch(_SCOPE_USAGE_WITHOUT, [since, scope[len("metadata.") :]])
        elif scope != "user":
            ((spent, requests),) = self.store._fetch(_SCOPE_USAGE, [key, since // 86400])
        else:
            params: list[object] = [since] if user is None else [user, since]
            ((spent, requests),) = self.store._fetch(_USAGE[user is None], params)
        held = f"{key}{SCOPE_MARK}{period}"
        ((reserved, in_flight),) = self.store._fetch(_RESERVED, [held, since, now])
        return BudgetUsage(
            spent=Decimal(spent), requests=int(requests), reserved=Decimal(reserved), in_flight=int(in_flight)
        )

    def budget_alert_claim(self, key: str, alert: BudgetAlert) -> bool:
        """Insert the alert's row unless one of the same scope, store ``key``, kind, fraction and window is
        there; returns whether this call inserted it (then it is this process's to fire)."""
        rows = self.store.execute(_CLAIM, (
            alert.scope, key, alert.kind, alert.fraction, alert.window_start.timestamp(), alert.spent, alert.limit,
            alert.period, None if alert.resets_at is None else alert.resets_at.timestamp(),
            alert.fired_at.timestamp()))  # fmt: skip
        return bool(rows)

    def budget_alerts_fired(self, since: float | None, until: float | None) -> list[tuple[Any, ...]]:
        """The rows of the alerts fired in ``[since, until)``, oldest first."""
        return self.store._fetch(_FIRED, [since, since, until, until])

    def budget_windows(self, scope: str, since: float) -> list[tuple[str, Decimal, int]]:
        """``(store key, spent, requests)`` of every key of ``scope`` with records since ``since`` (a UTC
        day boundary, or 0): a user's from the records, another scope's from the spend rollup."""
        self.settles.flush()
        if scope == "user":
            rows = self.store._fetch(_USER_WINDOWS, [since])
        else:
            prefix = store_key(scope, None)
            rows = self.store._fetch(_SCOPE_WINDOWS, [since // 86400, prefix, prefix + SCOPE_MARK])
        return [(key, Decimal(spent), int(n)) for key, spent, n in rows]

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
        """Store reconciliation results in one statement."""
        if not results:
            return
        rows = [(b.record_id, b.status, b.billed_cost, b.cache_discount, b.native_prompt_tokens,
                 b.native_completion_tokens, b.native_reasoning_tokens, b.native_cached_tokens, b.cancelled,
                 b.billed_user, b.user_mismatch, b.at) for b in results]  # fmt: skip
        columns = list(zip(*rows, strict=True))
        self.store.execute(_APPLY, [list(column) for column in columns])


def _arrays(settles: list[Settle]) -> tuple[object, ...]:
    """The settle arguments of the functions: ids to delete, then one array per column of the links."""
    if not settles:
        return (None,) * 7
    links = [(f"{s.id}.{i}", s.user or "", s.amount, s.created_at, s.expires_at, rec)
             for s in settles for i, rec in enumerate(s.records)]  # fmt: skip
    columns: list[object] = [list(c) for c in zip(*links, strict=True)] if links else [None] * 6
    return ([s.id for s in settles], *columns)


def _pending(retry_not_found: bool) -> str:
    return _PENDING.format(retry=" OR reconcile_status = 'not_found'" if retry_not_found else "")
