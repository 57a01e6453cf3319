"""The SQLite ledger's daily rollup: the table ``usage_daily``, the triggers that keep it and its fill (no I/O).

One row per UTC day, user, model (used, else requested), provider, kind and metadata (JSON text) holds
what :class:`~openrouter_attribution.usage.records.UsageTotals` needs of that group's records, so the
dashboard's reads over whole days add up a few thousand rows a day instead of every record.

Triggers on ``usage_records`` keep it in the writer's own transaction: an insert adds its record, a delete
(prune) subtracts it, an update (reconciliation fills ``billed_cost`` and ``user_mismatch``) subtracts the
old row and adds the new one. Records still in ``usage_inbox`` are not in the rollup until they are folded
into ``usage_records``: reads add the inbox's records themselves.

Costs stay exact decimal TEXT, added by ``usage_decimal_add`` / ``usage_decimal_sub``, scalar functions the
store registers on its connections (next to the ``usage_decimal_sum`` aggregate): another program that
inserts, deletes or updates ``usage_records`` must register them too (or it gets "no such function").
"""

from __future__ import annotations

__all__ = ["DAILY_MIGRATION", "day_sql"]


def day_sql(time: str) -> str:
    """The UTC day number of ``time`` (epoch seconds): ``floor(floor(time) / 86400)`` in integer arithmetic,
    as :func:`~openrouter_attribution.usage.stores.protocol.group_key` floors it (SQLite's integer division
    truncates towards zero: times before 1970 take the other branch)."""
    whole = f"(CAST({time} AS INTEGER) - ({time} < CAST({time} AS INTEGER)))"
    return f"(CASE WHEN {time} >= 0 THEN CAST({time} AS INTEGER) / 86400 ELSE ({whole} - 86399) / 86400 END)"


_GROUP = ("day", "user", "model", "provider", "kind", "metadata")
_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
           "priced", "reported", "reconciled", "user_mismatches")  # fmt: skip
_COSTS = ("cost", "reported_cost")
# A NULL user, model or provider is its own group, apart from '': the flags keep them apart in the unique
# key (an upsert needs a key without NULLs). Metadata is JSON text, never '' (records keep none as NULL).
_KEY = ("day, kind, ifnull(user, ''), user IS NULL, ifnull(model, ''), model IS NULL, ifnull(provider, ''), "
        "provider IS NULL, ifnull(metadata, '')")  # fmt: skip


def _values(r: str) -> tuple[list[str], list[str]]:
    """The group and the counted values of one record (``NEW`` or ``OLD``), in ``_GROUP`` and ``_COUNTS`` order."""
    group = [day_sql(f"{r}.time"), f"{r}.user", f"COALESCE({r}.model_used, {r}.model_requested)", f"{r}.provider",
             f"{r}.kind", f"{r}.metadata"]  # fmt: skip
    counts = ["1", f"{r}.outcome NOT IN ('ok', 'abandoned')", f"COALESCE({r}.prompt_tokens, 0)",
              f"COALESCE({r}.completion_tokens, 0)", f"COALESCE({r}.cached_tokens, 0)",
              f"COALESCE({r}.reasoning_tokens, 0)", f"COALESCE({r}.billed_cost, {r}.cost) IS NOT NULL",
              f"{r}.cost IS NOT NULL", f"{r}.billed_cost IS NOT NULL", f"COALESCE({r}.user_mismatch, 0)"]  # fmt: skip
    return group, counts


def _upsert(r: str, sign: int) -> str:
    """Add (``sign`` 1) or subtract (-1) one record's values to its group's row."""
    group, counts = _values(r)
    if sign > 0:
        costs = [f"COALESCE({r}.billed_cost, {r}.cost, '0')", f"COALESCE({r}.cost, '0')"]
    else:
        counts = [f"-({value})" for value in counts]
        costs = [f"usage_decimal_sub('0', COALESCE({r}.billed_cost, {r}.cost))", f"usage_decimal_sub('0', {r}.cost)"]
    added = ", ".join(
        [*(f"{name} = {name} + excluded.{name}" for name in _COUNTS),
         *(f"{name} = usage_decimal_add({name}, excluded.{name})" for name in _COSTS)]
    )  # fmt: skip
    return (f"INSERT INTO usage_daily ({', '.join((*_GROUP, *_COUNTS, *_COSTS))}) "
            f"VALUES ({', '.join((*group, *counts, *costs))}) ON CONFLICT ({_KEY}) DO UPDATE SET {added};")  # fmt: skip


# Any column a group or a value depends on: reconciliation's update sets billed_cost and user_mismatch.
_WATCHED = ("time, user, model_requested, model_used, provider, kind, metadata, outcome, prompt_tokens, "
            "completion_tokens, cached_tokens, reasoning_tokens, cost, billed_cost, user_mismatch")  # fmt: skip

DAILY_MIGRATION: tuple[str, ...] = (
    # Built afresh from the records, whatever an earlier run left (a ledger set back to an older version).
    *(f"DROP TRIGGER IF EXISTS usage_daily_{op}" for op in ("insert", "delete", "update")),
    "DROP TABLE IF EXISTS usage_daily",
    f"""CREATE TABLE usage_daily (
        day INTEGER NOT NULL,
        user TEXT,
        model TEXT,
        provider TEXT,
        kind TEXT NOT NULL,
        metadata TEXT,
        {", ".join(f"{name} INTEGER NOT NULL" for name in _COUNTS)},
        cost TEXT NOT NULL,
        reported_cost TEXT NOT NULL
    )""",
    f"CREATE UNIQUE INDEX usage_daily_key ON usage_daily ({_KEY})",
    f"CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_records BEGIN {_upsert('NEW', 1)} END",
    f"CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage_records BEGIN {_upsert('OLD', -1)} END",
    f"CREATE TRIGGER usage_daily_update AFTER UPDATE OF {_WATCHED} ON usage_records "
    f"BEGIN {_upsert('OLD', -1)} {_upsert('NEW', 1)} END",
    # The records already stored, one row per group (GROUP BY keeps NULL apart from '', as the key does).
    f"INSERT INTO usage_daily ({', '.join((*_GROUP, *_COUNTS, *_COSTS))}) SELECT "
    f"{day_sql('time')}, user, COALESCE(model_used, model_requested), provider, kind, metadata, COUNT(*), "
    "SUM(outcome NOT IN ('ok', 'abandoned')), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
    "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), COUNT(COALESCE(billed_cost, cost)), "
    "COUNT(cost), COUNT(billed_cost), COALESCE(SUM(user_mismatch), 0), "
    "COALESCE(usage_decimal_sum(COALESCE(billed_cost, cost)), '0'), COALESCE(usage_decimal_sum(cost), '0') "
    "FROM usage_records GROUP BY 1, 2, 3, 4, 5, 6",
)
"""The migration that creates the rollup, its triggers, and fills it from the records."""
