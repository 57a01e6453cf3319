"""Per-user usage ledger: records, storage, queries and exports (framework-neutral)."""

from openrouter_attribution.usage.export import export_csv, export_jsonl, totals_to_json, write_totals_csv
from openrouter_attribution.usage.ledger import UsageLedger
from openrouter_attribution.usage.queries import TimeBound, parse_time
from openrouter_attribution.usage.records import (
    TotalsBy,
    UsageQueryError,
    UsageRecord,
    UsageStoreError,
    UsageTotals,
)
from openrouter_attribution.usage.sqlite import SQLiteUsageStore
from openrouter_attribution.usage.storage import MemoryUsageStore, SupportsTotals, UsageStore

__all__ = [
    "MemoryUsageStore",
    "SQLiteUsageStore",
    "SupportsTotals",
    "TimeBound",
    "TotalsBy",
    "UsageLedger",
    "UsageQueryError",
    "UsageRecord",
    "UsageStore",
    "UsageStoreError",
    "UsageTotals",
    "export_csv",
    "export_jsonl",
    "parse_time",
    "totals_to_json",
    "write_totals_csv",
]
