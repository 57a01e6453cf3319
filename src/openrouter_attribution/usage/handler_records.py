"""Usage records of calls observed from outside the model, by framework callback / event handlers.

The LangChain and LlamaIndex handlers
(:class:`~openrouter_attribution.langchain.UsageCallbackHandler`,
:class:`~openrouter_attribution.llama_index.UsageEventHandler`) only translate
their framework's events into the neutral pieces defined here: an
:class:`ObservedCall` when a call starts, an :class:`Observed` result when it
ends, and :func:`build_record` to turn both into a :class:`UsageRecord`. This
module is framework-neutral (no LangChain or LlamaIndex import).

Token and cost fields follow OpenRouter's ``usage`` object
(https://openrouter.ai/docs/use-cases/usage-accounting); a value the response
does not report stays ``None`` (an unknown cost is never ``0``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.usage.records import UsageRecord, parse_cost
from openrouter_attribution.wire.stream import StreamAbandoned

__all__ = [
    "USAGE_RECORD_ID",
    "CallTracker",
    "Observed",
    "ObservedCall",
    "build_record",
    "claim_record_id",
    "never_raises",
    "openai_usage",
    "outcome_of",
    "read",
    "sent_attribution",
    "to_cost",
    "to_int",
]

_log = logging.getLogger("openrouter_attribution.usage")

K = TypeVar("K", bound=Hashable)
F = TypeVar("F", bound=Callable[..., Any])

# Stream consumers that stop reading (generator closed) or cancel the call: the call was abandoned,
# as the models' own pipeline records it (StreamAbandoned).
_ABANDONED = (GeneratorExit, asyncio.CancelledError, StreamAbandoned)

USAGE_RECORD_ID = "usage_record_id"
"""The attribute a failed call's exception carries: the ``record_id`` its usage record was written under."""

# The call a handler saw start last in this context. A stream closed early is recorded twice with no
# shared id on either side (LangChain tells its handlers before the model's own pipeline sees the
# close, LlamaIndex after it): both sides agree on one record id through this call instead.
_CURRENT: contextvars.ContextVar[ObservedCall | None] = contextvars.ContextVar(
    "openrouter_attribution_observed_call", default=None
)
_CLAIM = threading.Lock()


@dataclass(slots=True)
class ObservedCall:
    """What a handler knows when a call starts, plus its first streamed token."""

    attribution: Attribution
    """User and session resolved from the framework's context (before any identity policy)."""
    model_requested: str | None = None
    """The model the caller asked for."""
    started: float = field(default_factory=time.perf_counter)
    """``time.perf_counter()`` at the start."""
    wall: float = field(default_factory=time.time)
    """Epoch seconds at the start."""
    first: float | None = None
    """``time.perf_counter()`` at the first streamed token, for streams."""
    record_id: str | None = None
    """The record id agreed with a model's own ledger for this call (see :func:`claim_record_id`)."""
    finished: float | None = None
    """``time.perf_counter()`` when the handler wrote the record."""


@dataclass(frozen=True, slots=True)
class Observed:
    """What the end of a call reported; every field ``None`` when unknown."""

    sent: Attribution | None = None
    """The attribution a model of this library says it sent (after its identity policy), if any."""
    model_used: str | None = None
    provider: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: Decimal | None = None
    generation_id: str | None = None


EMPTY = Observed()


class CallTracker(Generic[K]):
    """Thread-safe map of the calls in flight, keyed by the framework's run or span id."""

    __slots__ = ("_calls", "_lock")

    def __init__(self) -> None:
        self._calls: dict[K, ObservedCall] = {}
        self._lock = threading.Lock()

    def start(self, key: K, call: ObservedCall) -> None:
        """Remember ``call`` under ``key`` (and as the call of this context, see :func:`claim_record_id`)."""
        with self._lock:
            self._calls[key] = call
        _CURRENT.set(call)

    def token(self, key: K) -> None:
        """Note a streamed token; the first one sets the time to first token."""
        with self._lock:
            call = self._calls.get(key)
            if call is not None and call.first is None:
                call.first = time.perf_counter()

    def get(self, key: K) -> ObservedCall | None:
        """The call in flight under ``key``, or ``None``."""
        with self._lock:
            return self._calls.get(key)

    def pop(self, key: K) -> ObservedCall | None:
        """Forget the call under ``key`` and return it (``None`` if unknown)."""
        with self._lock:
            return self._calls.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


def never_raises(method: F) -> F:
    """Decorate a handler method so that nothing it raises reaches the framework or the model call."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            # A usage handler must never break the call it observes; the ledger logs its own failures.
            _log.debug("usage handler %s failed", method.__qualname__, exc_info=True)
            return None

    return wrapper  # type: ignore[return-value]


def outcome_of(error: BaseException | None) -> str:
    """``"ok"``, ``"abandoned"`` (closed stream, cancelled call) or the error class name."""
    if error is None:
        return "ok"
    return "abandoned" if isinstance(error, _ABANDONED) else type(error).__name__


def read(source: Any, key: str) -> Any:
    """``source[key]`` for mappings, ``source.key`` for objects (SDK models), else ``None``."""
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def to_int(value: Any) -> int | None:
    """A token count, or ``None`` for anything that is not an int."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def to_cost(value: Any) -> Decimal | None:
    """An exact cost, or ``None`` when unknown or not a number (logged at debug)."""
    try:
        return parse_cost(value)
    except ValueError:
        _log.debug("ignoring a cost that is not a number: %r", value)
        return None


def openai_usage(usage: Any) -> dict[str, Any]:
    """Token counts and cost of an OpenAI-style ``usage`` object or dict (OpenRouter adds ``cost``).

    Returns:
        ``prompt_tokens``, ``completion_tokens``, ``cached_tokens``, ``reasoning_tokens`` and
        ``cost``, each ``None`` when not reported.
    """
    return {
        "prompt_tokens": to_int(read(usage, "prompt_tokens")),
        "completion_tokens": to_int(read(usage, "completion_tokens")),
        "cached_tokens": to_int(read(read(usage, "prompt_tokens_details"), "cached_tokens")),
        "reasoning_tokens": to_int(read(read(usage, "completion_tokens_details"), "reasoning_tokens")),
        "cost": to_cost(read(usage, "cost")),
    }


def sent_attribution(value: Any) -> Attribution | None:
    """The ``attribution`` dict that this library's models put on responses, as an :class:`Attribution`."""
    if not isinstance(value, Mapping):
        return None
    user, session = value.get("user"), value.get("session_id")
    return Attribution(
        user=user if isinstance(user, str) else None, session_id=session if isinstance(session, str) else None
    )


def _policy_user(user: str | None, policy: Any) -> str | None:
    if user is None or policy is None:
        return user
    try:
        return str(policy.apply(user))
    except Exception:
        # The model would have refused to send this id; record the call without a user rather than the raw id.
        _log.debug("the identity policy rejected a user id; recording the call without a user", exc_info=True)
        return None


def _policy_metadata(metadata: Mapping[str, str] | None, policy: Any) -> Mapping[str, str] | None:
    if not metadata or policy is None:
        return metadata
    try:
        return policy.apply_metadata(metadata)  # type: ignore[no-any-return]
    except Exception:
        _log.debug("the identity policy rejected a metadata value; recording the call without metadata", exc_info=True)
        return None


def build_record(
    call: ObservedCall,
    observed: Observed = EMPTY,
    *,
    error: BaseException | None = None,
    framework: str,
    policy: Any = None,
) -> UsageRecord:
    """The :class:`UsageRecord` of one observed call.

    The attribution a model of this library reports it sent wins over the handler's own resolution:
    it is what OpenRouter saw, after the model's identity policy. Otherwise the resolved user goes
    through ``policy`` (a :class:`~openrouter_attribution.UserIdPolicy`) when one is given.

    Args:
        call: The call as seen at its start.
        observed: What its end reported.
        error: The exception that ended it, if any.
        framework: ``"langchain"`` or ``"llama_index"``.
        policy: Optional identity policy for users the handler resolved itself.
    """
    now = time.perf_counter()
    if observed.sent is not None:
        user, session = observed.sent.user, observed.sent.session_id
    else:
        user, session = _policy_user(call.attribution.user, policy), call.attribution.session_id
    return UsageRecord(
        time=call.wall,
        user=user,
        session_id=session,
        model_requested=call.model_requested,
        model_used=observed.model_used,
        provider=observed.provider,
        prompt_tokens=observed.prompt_tokens,
        completion_tokens=observed.completion_tokens,
        cached_tokens=observed.cached_tokens,
        reasoning_tokens=observed.reasoning_tokens,
        cost=observed.cost,
        latency_s=now - call.started,
        ttft_s=(call.first - call.started) if call.first is not None else None,
        generation_id=observed.generation_id,
        streamed=call.first is not None,
        outcome=outcome_of(error),
        framework=framework,
        metadata=_policy_metadata(call.attribution.metadata, policy),
        record_id=_handler_record_id(call, observed, error, now),
    )


def _handler_record_id(call: ObservedCall, observed: Observed, error: BaseException | None, now: float) -> str:
    # A model with `ledger=` attached its record id to the error it raised, or agreed one for a stream
    # through the call of this context: the same call, one record.
    attached = getattr(error, USAGE_RECORD_ID, None) if error is not None else None
    with _CLAIM:
        if isinstance(attached, str) and attached:
            record_id = attached
        else:
            record_id = observed.generation_id or call.record_id or uuid.uuid4().hex
        call.record_id, call.finished = record_id, now
    return record_id


def claim_record_id(record_id: str, *, started: float, model: str | None) -> str:
    """The record id a model's own pipeline writes a stream under, agreed with a usage handler.

    When a handler observes the same call (its start was the last in this context, before the stream
    started, and it had not finished by then; same model), both sides use whichever id came first.
    Otherwise ``record_id`` itself.
    """
    call = _CURRENT.get()
    if call is None or call.started > started or (call.finished is not None and call.finished < started):
        return record_id
    if model is not None and call.model_requested is not None and model != call.model_requested:
        return record_id
    with _CLAIM:
        if call.record_id is None:
            call.record_id = record_id
        return call.record_id
