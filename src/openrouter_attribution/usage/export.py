"""Exports of records (CSV, JSON Lines) and of totals (CSV, JSON).

Record exports carry every :class:`UsageRecord` field in declaration order;
``time`` is ISO 8601 UTC with microseconds (``2026-12-01T21:13:50.123456Z``).

``cost`` is written one way in every machine-readable format: the exact decimal
digits in plain notation (``0.00000015``, never ``1.5E-7``), as a JSON *number*
in JSON and JSON Lines (``"cost": 0.00000015``) and as the same digits in CSV;
unknown is ``null`` (JSON) or empty (CSV), never ``0``. ``json.loads`` gives a
float that compares directly with the floats OpenRouter reports, and
``json.loads(text, parse_float=decimal.Decimal)`` gives the exact value.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import IO, Any

from openrouter_attribution.usage.records import (
    FIELDS,
    UsageRecord,
    UsageTotals,
    format_cost,
    format_time,
    metadata_json,
)

__all__ = [
    "RECORD_FIELDS",
    "TOTALS_FIELDS",
    "export_csv",
    "export_dict",
    "export_jsonl",
    "totals_to_json",
    "write_totals_csv",
]

RECORD_FIELDS: tuple[str, ...] = FIELDS
"""Column order of record exports."""

TOTALS_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(UsageTotals) if f.name != "key")
"""Columns of totals exports after the key column."""

PROGRESS_EVERY = 10_000

ProgressCallback = Callable[[int], None]


@contextlib.contextmanager
def _open_text(dest: str | os.PathLike[str] | IO[str], *, newline: str | None) -> Iterator[IO[str]]:
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
    else:
        yield dest


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return metadata_json(value)  # the metadata as one JSON cell
    return value


def _count(records: Iterable[UsageRecord], progress: ProgressCallback | None) -> Iterator[UsageRecord]:
    n = 0
    for n, rec in enumerate(records, 1):
        yield rec
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n)
    if progress is not None:
        progress(n)


def export_csv(
    records: Iterable[UsageRecord],
    dest: str | os.PathLike[str] | IO[str],
    *,
    progress: ProgressCallback | None = None,
) -> int:
    """Write records as CSV with a header row; returns the number of records written.

    Args:
        records: The records, e.g. ``ledger.records(since=...)``.
        dest: A path (overwritten, UTF-8) or an open text file (opened with ``newline=""``).
        progress: Called with the running count every 10,000 records and once at the end.
    """
    written = 0
    with _open_text(dest, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(RECORD_FIELDS)
        for rec in _count(records, progress):
            data = export_dict(rec)
            writer.writerow([_csv_value(format_cost(v) if isinstance(v, Decimal) else v) for v in data.values()])
            written += 1
    return written


def export_jsonl(
    records: Iterable[UsageRecord],
    dest: str | os.PathLike[str] | IO[str],
    *,
    progress: ProgressCallback | None = None,
) -> int:
    """Write one JSON object per line (:func:`export_dict`, ``cost`` an exact JSON number); returns the count."""
    written = 0
    with _open_text(dest, newline=None) as fh:
        for rec in _count(records, progress):
            items = export_dict(rec).items()
            fh.write("{" + ",".join(f"{json.dumps(k)}:{_json_value(v, compact=True)}" for k, v in items) + "}\n")
            written += 1
    return written


def export_dict(rec: UsageRecord) -> dict[str, Any]:
    """The fields of ``rec`` as exports write them: ``time`` ISO 8601 UTC, ``cost`` a Decimal or ``None``.

    :meth:`UsageRecord.from_dict` reads this back (``time`` as ISO text, ``cost`` as a number).
    """
    data = {name: getattr(rec, name) for name in RECORD_FIELDS}
    data["time"] = format_time(rec.time)
    return data


def _json_value(value: Any, *, compact: bool = False) -> str:
    if isinstance(value, Decimal):
        return format_cost(value)  # a JSON number with the exact digits
    return json.dumps(value, ensure_ascii=False, separators=(",", ":") if compact else None)


def totals_to_json(rows: Iterable[UsageTotals], key_name: str = "key", *, indent: int | None = 2) -> str:
    """A JSON list of objects, the group key under ``key_name``, ``cost`` an exact JSON number.

    Example:
        >>> row = UsageTotals(key="app_1", requests=1, cost=Decimal("1.5E-7"))
        >>> totals_to_json([row], "user", indent=None)
        '[{"user": "app_1", "requests": 1, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, \
"cached_tokens": 0, "reasoning_tokens": 0, "cost": 0.00000015, "unknown_cost_requests": 0, \
"reported_cost": null, "reconciled": 0, "user_mismatches": 0}]'
    """
    objects = []
    for row in rows:
        items = row.to_dict(key_name).items()
        objects.append("{" + ", ".join(f"{json.dumps(k)}: {_json_value(v)}" for k, v in items) + "}")
    if indent is None:
        return "[" + ", ".join(objects) + "]"
    if not objects:
        return "[]"
    pad = " " * indent
    return "[\n" + ",\n".join(pad + obj for obj in objects) + "\n]"


def write_totals_csv(rows: Iterable[UsageTotals], dest: IO[str], key_name: str = "key") -> None:
    """Totals as CSV with a header row; unknown values are empty, ``cost`` exact."""
    writer = csv.writer(dest)
    writer.writerow((key_name, *TOTALS_FIELDS))
    for row in rows:
        data = row.to_dict(key_name)
        writer.writerow([_csv_value(format_cost(v) if isinstance(v, Decimal) else v) for v in data.values()])
