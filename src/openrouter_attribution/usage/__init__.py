"""Per-user usage ledger: records, storage, queries and exports (framework-neutral)."""

from openrouter_attribution.usage.budgets.alerts import BudgetAlert, alerts_fired
from openrouter_attribution.usage.budgets.budget import BudgetStatus, BudgetUsage, UserBudget
from openrouter_attribution.usage.budgets.windows import BudgetWindow, budget_windows
from openrouter_attribution.usage.commit.spool import Spool
from openrouter_attribution.usage.export import export_csv, export_jsonl, totals_to_json, write_totals_csv
from openrouter_attribution.usage.ledger import DEFAULT_COMMIT_TIMEOUT, UsageLedger, default_spool_folder, open_store
from openrouter_attribution.usage.queries import TimeBound, parse_time
from openrouter_attribution.usage.reconcile import ReconcileSummary
from openrouter_attribution.usage.records import (
    TotalsBy,
    UsageQueryError,
    UsageRecord,
    UsageStoreError,
    UsageTotals,
)
from openrouter_attribution.usage.stores.location import redact
from openrouter_attribution.usage.stores.postgres.store import PostgresUsageStore
from openrouter_attribution.usage.stores.protocol import MemoryUsageStore, SupportsTotals, UsageStore
from openrouter_attribution.usage.stores.sqlite.store import SQLiteUsageStore

__all__ = [
    "BudgetAlert",
    "BudgetStatus",
    "BudgetUsage",
    "BudgetWindow",
    "DEFAULT_COMMIT_TIMEOUT",
    "MemoryUsageStore",
    "PostgresUsageStore",
    "ReconcileSummary",
    "SQLiteUsageStore",
    "Spool",
    "SupportsTotals",
    "TimeBound",
    "TotalsBy",
    "UsageLedger",
    "UsageQueryError",
    "UsageRecord",
    "UsageStore",
    "UsageStoreError",
    "UsageTotals",
    "UserBudget",
    "alerts_fired",
    "budget_windows",
    "default_spool_folder",
    "export_csv",
    "export_jsonl",
    "open_store",
    "parse_time",
    "redact",
    "totals_to_json",
    "write_totals_csv",
]
