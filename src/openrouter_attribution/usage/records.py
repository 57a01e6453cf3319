"""Usage records, aggregated totals and the usage errors.

A :class:`UsageRecord` is one model call as the ledger stores it: who it was
for (``user``, ``session_id``), what ran (``model_used``, ``provider``), what it
consumed (tokens, ``cost``) and how it ended (``outcome``). OpenRouter reports
token usage and cost in every response
(https://openrouter.ai/docs/use-cases/usage-accounting), so unknown values only
appear for failed or abandoned calls; they are ``None``, never ``0``.

Cost is a :class:`~decimal.Decimal` in USD credits. It is never a float inside
the library: sums of many small floats drift, sums of Decimals do not.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time as _time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime as _datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple, get_args

from openrouter_attribution.errors import OpenRouterError

__all__ = [
    "FIELDS",
    "FILTERS",
    "METADATA_PREFIX",
    "check_by",
    "check_where",
    "metadata_key",
    "record_from_fields",
    "TotalsBy",
    "UsageQueryError",
    "UsageRecord",
    "UsageStoreError",
    "UsageTotals",
    "add_costs",
    "sum_costs",
    "format_cost",
    "format_time",
    "metadata_from_json",
    "metadata_json",
    "parse_record_time",
    "parse_cost",
    "sort_totals",
]

TotalsBy = Literal["user", "model", "day", "session", "provider", "kind"]
"""Grouping keys accepted by ``totals(by=...)``."""

TOTALS_BY: tuple[str, ...] = get_args(TotalsBy)

METADATA_PREFIX = "metadata."
"""Dimensions named ``metadata.<key>`` group and filter by one key of :attr:`UsageRecord.metadata`."""
FILTERS: tuple[str, ...] = ("user", "model", "kind", "session", "provider")
"""What ``where=`` filters on, besides ``metadata.<key>``: equality on the user, the model (used, else
requested), the kind, the session and the provider."""
# Keys a query may name: what SQL can address as a JSON path label without quoting rules.
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

KINDS: tuple[str, ...] = ("chat", "embeddings", "rerank", "responses")
"""The values of :attr:`UsageRecord.kind`."""

# Additions in this context never round: the exponent range and precision are
# the largest Decimal supports, so sums of costs stay exact.
_EXACT = Context(prec=999_999_999, Emax=999_999_999, Emin=-999_999_999)


class UsageStoreError(OpenRouterError):
    """The usage store cannot be read (missing file, not a ledger, closed).

    Only queries raise it. Writing never raises: see :class:`UsageLedger`.
    """


class UsageQueryError(OpenRouterError, ValueError):
    """A query argument is invalid, for example an unparseable ``since`` value."""


def metadata_key(name: str) -> str | None:
    """The key of a ``metadata.<key>`` dimension (``None`` for any other name).

    Raises:
        UsageQueryError: ``<key>`` is empty or has characters other than letters, digits and ``_.:-``.
    """
    if not name.startswith(METADATA_PREFIX):
        return None
    key = name[len(METADATA_PREFIX) :]
    if not _METADATA_KEY.fullmatch(key):
        raise UsageQueryError(
            f"cannot query the metadata key {key!r}: name a key of 1 to 64 letters, digits or '_.:-', "
            "as in metadata.tenant"
        )
    return key


def check_by(by: str | None) -> None:
    """Check a ``totals(by=...)`` value.

    Raises:
        UsageQueryError: ``by`` is neither one of :data:`TOTALS_BY` nor ``metadata.<key>``.
    """
    if by is None or by in TOTALS_BY or metadata_key(by) is not None:
        return
    raise UsageQueryError(f"cannot group by {by!r}; choose one of {', '.join(TOTALS_BY)} or metadata.<key>")


def check_where(where: Mapping[str, str] | None) -> dict[str, str]:
    """A ``where=`` filter as a plain dict (empty for none): each name one of :data:`FILTERS` or
    ``metadata.<key>``, each value a string.

    Raises:
        UsageQueryError: an unknown name or a value that is not a string.
    """
    if not where:
        return {}
    checked: dict[str, str] = {}
    for name, value in where.items():
        if name not in FILTERS and metadata_key(name) is None:
            raise UsageQueryError(f"cannot filter on {name!r}; use one of {', '.join(FILTERS)} or metadata.<key>")
        if not isinstance(value, str):
            raise UsageQueryError(f"the filter {name}= needs a string value, not {type(value).__name__}")
        checked[name] = value
    return checked


def parse_cost(value: object) -> Decimal | None:
    """Convert a cost to an exact Decimal, keeping ``None`` (unknown) as ``None``.

    Floats are converted through their shortest repr (``0.1`` -> ``Decimal("0.1")``),
    which is the decimal number OpenRouter wrote on the wire.

    Raises:
        ValueError: for booleans, non-numeric strings and non-finite numbers.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("cost must be a number, not a boolean")
    if isinstance(value, Decimal):
        cost = value
    elif isinstance(value, (int, float, str)):
        try:
            cost = Decimal(str(value).strip())
        except InvalidOperation as err:
            raise ValueError(f"cost is not a number: {value!r}") from err
    else:
        raise ValueError(f"cost must be a Decimal, int, float or str, not {type(value).__name__}")
    if not cost.is_finite():
        raise ValueError("cost must be finite")
    return cost


def format_time(epoch: float) -> str:
    """ISO 8601 UTC with microseconds and a ``Z``: ``1764623630.123456`` -> ``"2025-12-01T21:13:50.123456Z"``."""
    return _datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_record_time(value: object) -> float:
    """Epoch seconds from a number or from the ISO 8601 text :func:`format_time` writes (exports)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        moment = _datetime.fromisoformat(iso)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"time must be epoch seconds or an ISO 8601 string, not {type(value).__name__}")


def format_cost(cost: Decimal) -> str:
    """Plain decimal notation without exponent (``Decimal("1.5E-7")`` -> ``"0.00000015"``)."""
    return format(cost, "f")


def _metadata(value: Mapping[str, str] | None) -> dict[str, str] | None:
    if not value:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("metadata must be a mapping of strings to strings")
    return dict(value)


def metadata_json(metadata: Mapping[str, str]) -> str:
    """A record's metadata as the SQL stores keep it: compact JSON, keys sorted."""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def metadata_from_json(value: object) -> dict[str, str] | None:
    """The metadata a SQL column (JSON text, or a dict a driver already decoded) holds."""
    if value is None or isinstance(value, dict):
        return value
    decoded = json.loads(value)  # type: ignore[arg-type]
    return decoded if isinstance(decoded, dict) and decoded else None


def add_costs(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """Exact sum of two costs where ``None`` means unknown and is skipped."""
    if a is None:
        return b
    if b is None:
        return a
    return _EXACT.add(a, b)


def sum_costs(costs: Iterable[Decimal]) -> Decimal:
    """The exact sum of known costs (``0`` for none)."""
    return functools.reduce(_EXACT.add, costs, Decimal(0))


class _UsageRecordFields(NamedTuple):
    # The fields of UsageRecord, in declaration order; construct a UsageRecord, never this class.
    time: float
    """When the call started, epoch seconds (UTC)."""
    user: str | None
    """The end-user id sent as OpenRouter's ``user`` field (after the id policy)."""
    session_id: str | None
    """The ``session_id`` sent with the call."""
    model_requested: str | None
    """The model the caller asked for."""
    model_used: str | None
    """The model OpenRouter reports it used (differs when ``models`` fallbacks fire)."""
    provider: str | None
    """The upstream provider that served the call."""
    prompt_tokens: int | None
    """Prompt tokens, as reported in ``usage``."""
    completion_tokens: int | None
    """Completion tokens, as reported in ``usage``."""
    cached_tokens: int | None
    """``usage.prompt_tokens_details.cached_tokens``."""
    reasoning_tokens: int | None
    """``usage.completion_tokens_details.reasoning_tokens``."""
    cost: Decimal | None
    """``usage.cost`` in USD credits; ``None`` when unknown, never ``0`` for unknown."""
    latency_s: float | None
    """Seconds from sending the request to the complete answer."""
    ttft_s: float | None
    """Seconds to the first streamed token (streams only)."""
    generation_id: str | None
    """OpenRouter's generation id (usable with ``GET /generation``)."""
    streamed: bool
    """Whether the call was a stream."""
    outcome: str
    """``"ok"``, the error class name (e.g. ``"RateLimitError"``) or ``"abandoned"``."""
    framework: str | None
    """``"langchain"``, ``"llama_index"`` or ``None`` for direct use."""
    kind: str
    """What the call was: ``"chat"`` (chat completions), ``"responses"`` (the Responses API), ``"embeddings"``
    or ``"rerank"``."""
    metadata: dict[str, str] | None
    """The attribution's ``metadata`` after the identity policy (``{"tenant": "acme"}``): the dimensions
    totals and budgets group by (``totals(by="metadata.tenant")``). Kept for every kind of call, also for
    embeddings and rerank, whose requests do not carry it. Treat it as read-only."""
    record_id: str
    """The record's identity: a store keeps one record per id, so writing a record again (two recorders on
    one call, a retried batch, a replayed spool) keeps one row. Defaults to ``generation_id`` when known,
    otherwise to a new random id (32 hex digits)."""


class UsageRecord(_UsageRecordFields):
    """One model call, attributed to an end-user; immutable.

    All arguments are keyword-only; everything but ``time`` (now), ``streamed`` (``False``),
    ``outcome`` (``"ok"``), ``kind`` (``"chat"``) and ``record_id`` defaults to ``None`` (unknown).
    A record is a named tuple of its fields in declaration order: read them as attributes,
    :meth:`to_dict` gives a JSON-safe dict and :meth:`replace` a changed copy. Building one costs a
    model call a single allocation (the ledger records one per call).

    Raises:
        ValueError: an unknown ``kind``, or a ``cost`` that is not a finite number.

    Examples:
        >>> from decimal import Decimal
        >>> rec = UsageRecord(user="app_42", model_used="openai/gpt-4o-mini", prompt_tokens=12,
        ...                   completion_tokens=5, cost=Decimal("0.0000093"))
        >>> UsageRecord.from_dict(rec.to_dict()) == rec
        True
        >>> rec.replace(cost="0.00001").cost
        Decimal('0.00001')
    """

    __slots__ = ()

    def __new__(
        cls,
        *,
        time: float | None = None,
        user: str | None = None,
        session_id: str | None = None,
        model_requested: str | None = None,
        model_used: str | None = None,
        provider: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cached_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cost: Decimal | float | int | str | None = None,
        latency_s: float | None = None,
        ttft_s: float | None = None,
        generation_id: str | None = None,
        streamed: bool = False,
        outcome: str = "ok",
        framework: str | None = None,
        kind: str = "chat",
        metadata: Mapping[str, str] | None = None,
        record_id: str = "",
    ) -> UsageRecord:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        return record_from_fields(cls, (
            _time.time() if time is None else time, user, session_id, model_requested, model_used, provider,
            prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, parse_cost(cost), latency_s, ttft_s,
            generation_id, streamed, outcome, framework, kind, _metadata(metadata),
            record_id or generation_id or uuid.uuid4().hex,
        ))  # fmt: skip

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickle and copy rebuild the tuple as it is (the keyword-only constructor takes no positions).
        return record_from_fields, (UsageRecord, tuple(self))

    def replace(self, **changes: Any) -> UsageRecord:
        """A copy with ``changes`` applied, checked as the constructor checks its arguments (the
        ``record_id`` stays unless changed)."""
        return UsageRecord(**{**self._asdict(), **changes})

    __replace__ = replace  # copy.replace() (Python 3.13)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field; ``cost`` becomes a decimal string (or ``None``)."""
        data = self._asdict()
        if self.cost is not None:
            data["cost"] = format_cost(self.cost)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageRecord:
        """Rebuild a record from :meth:`to_dict` output (missing optional fields default).

        Raises:
            ValueError: for unknown keys or an invalid cost.
        """
        unknown = set(data) - _FIELD_NAMES
        if unknown:
            raise ValueError(f"unknown UsageRecord fields: {sorted(unknown)}")
        kwargs = dict(data)
        if "time" in kwargs:
            kwargs["time"] = parse_record_time(kwargs["time"])
        return cls(**kwargs)


record_from_fields = tuple.__new__
"""``record_from_fields(UsageRecord, values)``: a record from its field values in declaration order, unchecked
(the call path builds records from values it parsed itself)."""

FIELDS: tuple[str, ...] = UsageRecord._fields
"""The fields of a :class:`UsageRecord`, in declaration order."""
_FIELD_NAMES = frozenset(FIELDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotals:
    """Aggregated usage of one group (a user, a model, a UTC day, ...).

    Token sums count the records where the value is known. ``cost`` is the exact
    sum of the known costs, ``None`` only when no record of the group had a known
    cost; ``unknown_cost_requests`` says how many records had none.
    """

    key: str | None
    """The group key (user id, model, ``YYYY-MM-DD`` UTC day, ...); ``None`` for records without one
    and for the single overall row of ``totals(by=None)``."""
    requests: int = 0
    """Number of calls."""
    errors: int = 0
    """Calls that failed (outcome neither ``"ok"`` nor ``"abandoned"``)."""
    prompt_tokens: int = 0
    """Sum of known prompt tokens."""
    completion_tokens: int = 0
    """Sum of known completion tokens."""
    cached_tokens: int = 0
    """Sum of known cached prompt tokens."""
    reasoning_tokens: int = 0
    """Sum of known reasoning tokens."""
    cost: Decimal | None = None
    """Exact sum of known costs in USD: the billed cost where a call is reconciled, the reported one
    elsewhere; ``None`` when no cost was known."""
    unknown_cost_requests: int = 0
    """Calls whose cost is unknown (not included in ``cost``)."""
    reported_cost: Decimal | None = None
    """Exact sum of the costs reported in the responses (``usage.cost``), reconciled or not."""
    reconciled: int = 0
    """Calls whose billed cost was fetched from ``GET /generation`` (see ``UsageLedger.reconcile``); for
    those, ``cost`` holds the billed cost instead of the reported one."""
    user_mismatches: int = 0
    """Reconciled calls whose ``external_user`` at OpenRouter differs from the user the ledger recorded."""

    def to_dict(self, key_name: str = "key") -> dict[str, Any]:
        """Plain dict with the key under ``key_name``; ``cost`` stays a Decimal (or ``None``)."""
        data: dict[str, Any] = {key_name: self.key}
        data.update((f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "key")
        return data


def sort_totals(rows: list[UsageTotals]) -> list[UsageTotals]:
    """Order by cost (highest first, unknown last), then key (``None`` last)."""
    # Two stable sorts instead of one key: negating a Decimal would round it.
    ordered = sorted(rows, key=lambda t: (t.key is None, t.key or ""))
    ordered.sort(key=lambda t: (t.cost is not None, t.cost or 0), reverse=True)
    return ordered
