"""Reconciliation: the cost OpenRouter billed for each recorded generation, from ``GET /generation``.

The ``cost`` a response reports in ``usage`` is what OpenRouter knew at answer time; what it bills is in
``GET /generation?id=`` (``total_cost``), and can differ: cache discounts, BYOK, cancelled streams
(https://openrouter.ai/docs/api-reference/get-a-generation). :func:`reconcile` fetches it for every
record that has a generation id and is not reconciled yet, and stores the billed ``total_cost`` (exact
``Decimal``), ``cache_discount``, the native token counts, ``cancelled`` and ``external_user`` beside
the record; a record whose ``external_user`` differs from the user the ledger recorded is flagged.
Reports then use the billed cost where a record is reconciled (``UsageTotals.cost``) and show the
reported one beside it (``reported_cost``).

- Bounded concurrency: ``concurrency`` requests at once (threads on the shared ``openai`` client,
  whose retries handle 408, 429 and 5xx answers, honouring ``Retry-After``).
- Stats appear a short while after a generation ends: a 404 for a generation younger than ``recent``
  seconds is retried with exponential backoff (0.25 s doubling, at most 5 s apart) for up to
  ``retry_for`` seconds, and left pending for a later run if it is still missing. An older 404 is
  stored as ``not_found`` (never as zero cost) and not asked again unless ``retry_not_found``.
- Resumable: results are written to the store in small batches as they arrive, so an interrupted run
  (Ctrl-C, a killed process) loses at most the requests in flight, and the next run starts with what
  is still pending.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openrouter_attribution import environment
from openrouter_attribution.errors import APIError, AuthenticationError, ConfigurationError, InvalidResponseError
from openrouter_attribution.usage.budgets.budget import backend_of
from openrouter_attribution.usage.records import parse_cost

__all__ = ["Billed", "Candidate", "ReconcileSummary", "reconcile"]

_PAGE = 200
_WRITE_EVERY = 20
_FIRST_DELAY, _MAX_DELAY = 0.25, 5.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A record waiting for its billed cost."""

    record_id: str
    generation_id: str
    user: str | None
    cost: Decimal | None
    """The cost reported at answer time."""
    time: float


@dataclass(frozen=True, slots=True)
class Billed:
    """What ``GET /generation`` said about one record (``status`` ``"billed"`` or ``"not_found"``)."""

    record_id: str
    status: str
    at: float
    billed_cost: Decimal | None = None
    cache_discount: Decimal | None = None
    native_prompt_tokens: int | None = None
    native_completion_tokens: int | None = None
    native_reasoning_tokens: int | None = None
    native_cached_tokens: int | None = None
    cancelled: bool | None = None
    billed_user: str | None = None
    user_mismatch: bool | None = None


@dataclass
class ReconcileSummary:
    """What a reconciliation run did.

    Examples:
        >>> summary = ReconcileSummary(checked=3, updated=2, not_found=1, billed=Decimal("0.9"), reported=Decimal("1"))
        >>> summary.describe()
        'checked 3, updated 2, not found 1, user mismatches 0, total drift -0.1 USD (billed 0.9, reported 1)'
    """

    pending: int = 0
    """Records waiting for reconciliation when the run started."""
    checked: int = 0
    """Generations looked up."""
    updated: int = 0
    """Records that now carry their billed cost."""
    not_found: int = 0
    """Generations OpenRouter does not know (older than ``recent``): stored as not found, never as 0."""
    not_yet: int = 0
    """Recent generations whose stats did not appear in time: left for the next run."""
    failed: int = 0
    """Lookups that failed for another reason (left for the next run)."""
    user_mismatches: int = 0
    """Updated records whose ``external_user`` differs from the user that was recorded."""
    reported: Decimal = Decimal(0)
    """Sum of the reported costs of the updated records (unknown counts as 0)."""
    billed: Decimal = Decimal(0)
    """Sum of their billed costs."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed lookups by error class name."""

    @property
    def drift(self) -> Decimal:
        """``billed - reported`` over the updated records (positive: OpenRouter billed more)."""
        return self.billed - self.reported

    def describe(self) -> str:
        """One line: checked, updated, not found, user mismatches, total drift (and what is left)."""
        text = (f"checked {self.checked:,}, updated {self.updated:,}, not found {self.not_found:,}, "
                f"user mismatches {self.user_mismatches:,}, total drift {self.drift:+f} USD "
                f"(billed {self.billed:f}, reported {self.reported:f})")  # fmt: skip
        if self.not_yet or self.failed:
            text += f"; left for the next run: {self.not_yet:,} not available yet, {self.failed:,} failed"
        return text


def _decimal(value: Any) -> Decimal | None:
    """An amount of OpenRouter's answer as :func:`parse_cost` reads costs; ``None`` when it is not one."""
    try:
        return parse_cost(value)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_generation(candidate: Candidate, payload: Any, *, at: float) -> Billed:
    """The :class:`Billed` result of a ``GET /generation`` body.

    Raises:
        InvalidResponseError: the body has no ``data`` object or no numeric ``total_cost``.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    cost = _decimal(data.get("total_cost")) if isinstance(data, dict) else None
    if not isinstance(data, dict) or cost is None:
        raise InvalidResponseError("GET /generation answered without data.total_cost")
    external = data.get("external_user")
    external = external if isinstance(external, str) and external else None
    cancelled = data.get("cancelled")
    return Billed(
        record_id=candidate.record_id,
        status="billed",
        at=at,
        billed_cost=cost,
        cache_discount=_decimal(data.get("cache_discount")),
        native_prompt_tokens=_int(data.get("native_tokens_prompt")),
        native_completion_tokens=_int(data.get("native_tokens_completion")),
        native_reasoning_tokens=_int(data.get("native_tokens_reasoning")),
        native_cached_tokens=_int(data.get("native_tokens_cached")),
        cancelled=cancelled if isinstance(cancelled, bool) else None,
        billed_user=external,
        user_mismatch=external != candidate.user,
    )


class _Lookup:
    """Fetches one generation, retrying a 404 while the generation is recent."""

    def __init__(
        self, settings: Any, *, recent: float, retry_for: float, clock: Callable[[], float], stop: threading.Event
    ) -> None:
        self.settings = settings
        self.recent = recent
        self.retry_for = retry_for
        self.clock = clock
        self.stop = stop

    def __call__(self, candidate: Candidate) -> Billed | None:
        """The result; ``None`` when a recent generation is still missing. Other errors raise."""
        from openrouter_attribution.transport import get_json

        deadline = time.monotonic() + self.retry_for
        delay = _FIRST_DELAY
        while True:
            try:
                payload = get_json(self.settings, "/generation", {"id": candidate.generation_id})
            except APIError as err:
                if err.status_code != 404:
                    raise
                if self.clock() - candidate.time >= self.recent:
                    return Billed(record_id=candidate.record_id, status="not_found", at=self.clock())
                if time.monotonic() + delay > deadline or self.stop.wait(delay):
                    return None
                delay = min(delay * 2, _MAX_DELAY)
                continue
            return parse_generation(candidate, payload, at=self.clock())


def _candidates(backend: Any, since: float | None, retry_not_found: bool) -> Iterator[Candidate]:
    after: tuple[float, str] | None = None
    while True:
        page = backend.reconcile_candidates(since, after, _PAGE, retry_not_found=retry_not_found)
        yield from page
        if len(page) < _PAGE:
            return
        after = (page[-1].time, page[-1].record_id)


def reconcile(
    store: Any,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    since: float | None = None,
    concurrency: int = 8,
    recent: float = 600.0,
    retry_for: float = 30.0,
    retry_not_found: bool = False,
    timeout: float | None = 30.0,
    max_retries: int = 2,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> ReconcileSummary:
    """Fetch and store the billed cost of every unreconciled record with a generation id.

    Args:
        store: The ledger's store (SQLite or PostgreSQL).
        api_key: OpenRouter API key; default ``$OPENROUTER_API_KEY``. Never logged or shown.
        base_url: API base URL; default ``$OPENROUTER_BASE_URL`` or ``https://openrouter.ai/api/v1``.
        since: Only records at or after this time (epoch seconds).
        concurrency: Lookups in flight at most.
        recent: Seconds after a call during which a 404 means "not yet" (retried), not "not found".
        retry_for: Seconds a recent 404 is retried within this run.
        retry_not_found: Ask again for generations an earlier run stored as not found.
        timeout: Seconds per request.
        max_retries: The ``openai`` SDK's retries per request (408, 429, 5xx).
        progress: Called with ``(done, total)`` as lookups finish.
        clock: Epoch seconds now (for tests).

    Raises:
        ConfigurationError: no API key, a bad option, or a store that cannot hold billed costs.
        AuthenticationError: OpenRouter refused the key (results so far are kept).
    """
    from openrouter_attribution.transport import ConnectionSettings

    backend = backend_of(store)
    if backend is None or not hasattr(backend, "reconcile_apply"):
        raise ConfigurationError(f"{type(store).__name__} cannot hold billed costs; use an SQLite or PostgreSQL ledger")
    key = api_key or environment.api_key()
    if not key:
        raise ConfigurationError("No OpenRouter API key: pass api_key=... or set OPENROUTER_API_KEY.")
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
    url = (base_url or environment.base_url()).rstrip("/")
    settings = ConnectionSettings(api_key=key, base_url=url, timeout=timeout, max_retries=max_retries)
    summary = ReconcileSummary(pending=backend.reconcile_pending(since, retry_not_found=retry_not_found))
    stop = threading.Event()
    lookup = _Lookup(settings, recent=recent, retry_for=retry_for, clock=clock, stop=stop)
    done: list[Billed] = []
    costs: dict[str, Decimal | None] = {}
    try:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="openrouter-reconcile") as pool:
            try:
                running: dict[Future[Billed | None], Candidate] = {}
                for candidate in _candidates(backend, since, retry_not_found):
                    running[pool.submit(lookup, candidate)] = candidate
                    costs[candidate.record_id] = candidate.cost
                    if len(running) >= concurrency * 2:
                        _collect(running, summary, done, block=True)
                    if len(done) >= _WRITE_EVERY:
                        _write(backend, done, costs, summary)
                    if progress is not None:
                        progress(summary.checked, summary.pending)
                while running:
                    _collect(running, summary, done, block=True)
                    if len(done) >= _WRITE_EVERY:
                        _write(backend, done, costs, summary)
                    if progress is not None:
                        progress(summary.checked, summary.pending)
            except BaseException:
                stop.set()  # retries waiting on a 404 give up; queued lookups are cancelled
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        _write(backend, done, costs, summary)
    return summary


def _collect(
    running: dict[Future[Billed | None], Candidate], summary: ReconcileSummary, done: list[Billed], *, block: bool
) -> None:
    finished, _ = wait(list(running), timeout=None if block else 0, return_when=FIRST_COMPLETED)
    for future in finished:
        running.pop(future)
        summary.checked += 1
        try:
            result = future.result()
        except AuthenticationError:
            raise
        except APIError as err:
            summary.failed += 1
            summary.errors[type(err).__name__] = summary.errors.get(type(err).__name__, 0) + 1
            continue
        if result is None:
            summary.not_yet += 1
        else:
            done.append(result)


def _write(backend: Any, done: list[Billed], costs: dict[str, Decimal | None], summary: ReconcileSummary) -> None:
    if not done:
        return
    backend.reconcile_apply(done)
    for result in done:
        reported = costs.pop(result.record_id, None)
        if result.status == "not_found":
            summary.not_found += 1
            continue
        summary.updated += 1
        summary.user_mismatches += bool(result.user_mismatch)
        summary.billed += result.billed_cost or 0
        summary.reported += reported or 0
    done.clear()
