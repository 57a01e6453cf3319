"""The PostgreSQL ledger's daily rollup: the table ``usage_daily``, the triggers that keep it and its fill.

One row per UTC day, user, model (used, else requested), provider, kind and metadata (JSON text) holds
what :class:`~openrouter_attribution.usage.records.UsageTotals` needs of that group's records (costs as
exact ``NUMERIC`` sums), so the dashboard's reads over whole days add up a few thousand rows a day instead
of every record.

Statement-level triggers with transition tables keep it in the writer's own transaction: an insert of a
batch adds its records grouped (one upsert per statement, not one per record), a delete (prune) subtracts
them, an update (reconciliation fills ``billed_cost`` and ``user_mismatch``) subtracts the old rows and
adds the new ones. Concurrent writers of one group wait for each other's row lock until they commit.
"""

from __future__ import annotations

__all__ = ["DAILY_MIGRATION"]

_DAY = "floor(floor(time) / 86400)::bigint"
_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
           "priced", "reported", "reconciled", "user_mismatches")  # fmt: skip
_COSTS = ("cost", "reported_cost")
_NAMES = ", ".join(("day", '"user"', "model", "provider", "kind", "metadata", *_COUNTS, *_COSTS))
# A NULL user, model or provider is its own group, apart from '': the flags keep them apart in the unique
# key (ON CONFLICT needs a key that treats them as equal). Metadata is JSON text, never ''.
_KEY = ("day, kind, COALESCE(\"user\", ''), (\"user\" IS NULL), COALESCE(model, ''), (model IS NULL), "
        "COALESCE(provider, ''), (provider IS NULL), COALESCE(metadata, '')")  # fmt: skip
# The records of `source` (with a column `sign`, 1 or -1) summed per group.
_GROUPED = (
    f'SELECT {_DAY}, "user", COALESCE(model_used, model_requested), provider, kind, metadata, SUM(sign), '
    "SUM(sign * (outcome NOT IN ('ok', 'abandoned'))::int), SUM(sign * COALESCE(prompt_tokens, 0)), "
    "SUM(sign * COALESCE(completion_tokens, 0)), SUM(sign * COALESCE(cached_tokens, 0)), "
    "SUM(sign * COALESCE(reasoning_tokens, 0)), SUM(sign * (COALESCE(billed_cost, cost) IS NOT NULL)::int), "
    "SUM(sign * (cost IS NOT NULL)::int), SUM(sign * (billed_cost IS NOT NULL)::int), "
    "SUM(sign * (user_mismatch IS TRUE)::int), COALESCE(SUM(sign * COALESCE(billed_cost, cost)), 0), "
    "COALESCE(SUM(sign * cost), 0) FROM {source} GROUP BY 1, 2, 3, 4, 5, 6"
)
_ADDED = ", ".join(f"{name} = d.{name} + excluded.{name}" for name in (*_COUNTS, *_COSTS))
_APPLY = f"INSERT INTO usage_daily AS d ({_NAMES}) {_GROUPED} ON CONFLICT ({_KEY}) DO UPDATE SET {_ADDED};"

_FUNCTION = f"""CREATE OR REPLACE FUNCTION usage_daily_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_APPLY.format(source="(SELECT 1 AS sign, * FROM added) r")}
    ELSIF TG_OP = 'DELETE' THEN
        {_APPLY.format(source="(SELECT -1 AS sign, * FROM removed) r")}
    ELSE
        {_APPLY.format(source="(SELECT -1 AS sign, * FROM removed UNION ALL SELECT 1, * FROM added) r")}
    END IF;
    RETURN NULL;
END
$fn$"""

DAILY_MIGRATION: tuple[str, ...] = (
    # Built afresh from the records, whatever an earlier run left (a ledger set back to an older version).
    *(f"DROP TRIGGER IF EXISTS usage_daily_{op} ON usage_records" for op in ("insert", "delete", "update")),
    "DROP TABLE IF EXISTS usage_daily",
    f"""CREATE TABLE usage_daily (
        day bigint NOT NULL,
        "user" text,
        model text,
        provider text,
        kind text NOT NULL,
        metadata text,
        {", ".join(f"{name} bigint NOT NULL" for name in _COUNTS)},
        cost numeric NOT NULL,
        reported_cost numeric NOT NULL
    )""",
    f"CREATE UNIQUE INDEX usage_daily_key ON usage_daily ({_KEY})",
    _FUNCTION,
    # Transition tables admit no column list (UPDATE OF ...): every update of usage_records re-adds its
    # rows; only reconciliation updates records.
    "CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_records REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply()",
    "CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage_records REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply()",
    "CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_records REFERENCING OLD TABLE AS removed "
    "NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply()",
    # The records already stored: creating the triggers locked out writers until the migration commits.
    f"INSERT INTO usage_daily ({_NAMES}) {_GROUPED.format(source='(SELECT 1 AS sign, * FROM usage_records) r')}",
)
"""The migration that creates the rollup, its triggers, and fills it from the records."""
