"""A LlamaIndex event handler that writes every LLM call to a usage ledger.

LlamaIndex's instrumentation emits ``LLMChatStartEvent`` / ``LLMChatInProgressEvent`` /
``LLMChatEndEvent`` (and the ``LLMCompletion*`` equivalents) for every LLM, tagged with the
span of the call. :class:`UsageEventHandler` turns them into one
:class:`~openrouter_attribution.usage.UsageRecord` per call; :func:`attach_usage_handler`
registers it on the root dispatcher so it sees every LLM of the process. Glue only: the record
is built by :mod:`openrouter_attribution.usage.handler_records`.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Mapping
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import active_instrument_tags
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.events.span import SpanDropEvent
from pydantic import Field, PrivateAttr

from openrouter_attribution.attribution import Attribution, resolve
from openrouter_attribution.errors import BudgetExceededError
from openrouter_attribution.usage.handler_records import (
    CallTracker,
    Observed,
    ObservedCall,
    build_record,
    never_raises,
    openai_usage,
    read,
    sent_attribution,
    to_cost,
    to_int,
)

__all__ = ["UsageEventHandler", "attach_usage_handler"]

_NO_MODEL = "unknown"  # LLMMetadata.model_name's default
_STARTS = (LLMChatStartEvent, LLMCompletionStartEvent)
_PROGRESS = (LLMChatInProgressEvent, LLMCompletionInProgressEvent)
_ENDS = (LLMChatEndEvent, LLMCompletionEndEvent)

# The call whose start was last seen in this context: (span id, start event class, model payload).
# An LLM that implements one call style with the other (LlamaIndex's `CustomLLM` answers `chat` with
# its own `complete`) emits a second call inside the first: a start of the other style, for the same
# model, seen while the call of this context is open and has produced nothing yet, is part of it.
_OUTER: contextvars.ContextVar[tuple[str | None, type, dict[str, Any]] | None] = contextvars.ContextVar(
    "openrouter_attribution_llm_call", default=None
)


class UsageEventHandler(BaseEventHandler):
    """Record the usage of every LlamaIndex LLM call in a usage ledger, one record per call.

    Works with any LlamaIndex LLM: this library's :class:`~openrouter_attribution.llama_index.OpenRouter`
    (with or without ``ledger=``: both write a call under one record id, so it is one record),
    LlamaIndex's ``OpenAI`` / ``OpenRouter`` integrations, custom LLMs.

    Usage and cost come from the response's ``additional_kwargs`` (this library's models put tokens,
    ``cost``, ``provider``, ``model``, ``generation_id`` and the sent ``attribution`` there), otherwise
    from the OpenAI-style ``raw["usage"]`` (``prompt_tokens``, ``completion_tokens``, OpenRouter's
    ``cost``) and ``raw["model"]``; a cost that is not reported stays ``None``.

    Who a call is for: the ``attribution`` a model of this library reports it sent (after its identity
    policy); otherwise the library's resolution order over the call's ``user=`` / ``session_id=``
    keyword arguments, the active :func:`~openrouter_attribution.user_context` and the
    ``instrument_tags`` (keys ``user_id_tag`` / ``session_id_tag``).

    Calls are keyed by their instrumentation span; a failed call gets the error class name as its
    outcome, a stream closed before its end ``"abandoned"``. The handler never raises (problems are
    logged at debug level on ``openrouter_attribution.usage``).

    Args:
        ledger: Anything with ``record(UsageRecord)``, usually a :class:`~openrouter_attribution.UsageLedger`.

    Keyword Args:
        user_id_tag (str): ``instrument_tags`` key that holds the end-user id.
        session_id_tag (str): ``instrument_tags`` key that holds the session id.
        policy (UserIdPolicy | None): Optional :class:`~openrouter_attribution.UserIdPolicy` applied to the
            user ids the handler resolves itself; ids reported by this library's models are kept as they are.

    Examples:
        >>> from llama_index.core.instrumentation import get_dispatcher
        >>> from llama_index.core.llms import MockLLM
        >>> from openrouter_attribution import UsageLedger, user_context
        >>> ledger = UsageLedger(":memory:")
        >>> handler = attach_usage_handler(ledger)
        >>> with user_context("app_42"):
        ...     _ = MockLLM().complete("Hello")
        >>> [(r.user, r.outcome, r.cost, r.framework) for r in ledger.records()]
        [('app_42', 'ok', None, 'llama_index')]
        >>> get_dispatcher().event_handlers.remove(handler)  # detach
        >>> ledger.close()
    """

    ledger: Any = Field(exclude=True)
    """Where the records go (not serialized)."""
    user_id_tag: str = "user_id"
    """``instrument_tags`` key that holds the end-user id."""
    session_id_tag: str = "session_id"
    """``instrument_tags`` key that holds the session id."""
    policy: Any = Field(default=None, exclude=True)
    """Identity policy for user ids the handler resolves itself (``None``: kept as they are)."""
    _calls: CallTracker[str | None] = PrivateAttr(default_factory=CallTracker)

    def __init__(self, ledger: Any, **options: Any) -> None:
        super().__init__(ledger=ledger, **options)  # type: ignore[call-arg]  # pydantic fields

    @classmethod
    def class_name(cls) -> str:
        return "OpenRouterAttributionUsageEventHandler"

    @never_raises
    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        """Follow the LLM calls: start, streamed progress, end, and failures."""
        key = event.span_id
        if isinstance(event, _STARTS):
            self._start(event)
        elif isinstance(event, _PROGRESS):
            self._calls.token(key)
        elif isinstance(event, _ENDS):
            self._finish(key, from_response(event.response), None)
        elif isinstance(event, ExceptionEvent):  # a stream failed or was closed while being read
            self._finish(key, None, event.exception)
        elif isinstance(event, SpanDropEvent) and self._calls.get(key) is not None:
            # Dispatched from inside the span's `except` block: the exception is the one being handled.
            error = sys.exc_info()[1]
            self._finish(key, None, error if error is not None else _SpanDropped(event.err_str))

    def _start(self, event: LLMChatStartEvent | LLMCompletionStartEvent) -> None:
        if self._is_inner(event):
            return
        call_kwargs = event.additional_kwargs or {}
        explicit = _layer(call_kwargs, "user", "session_id")
        ambient = _layer(event.tags or active_instrument_tags.get(), self.user_id_tag, self.session_id_tag)
        attribution = resolve(explicit=explicit, ambient=ambient).attribution
        model = event.model_dict.get("model") or event.model_dict.get("model_name")
        # LlamaIndex's placeholder for "no model name" is "unknown": recorded as unknown (None), like LangChain's.
        model = model if isinstance(model, str) and model != _NO_MODEL else None
        self._calls.start(event.span_id, ObservedCall(attribution, model))
        _OUTER.set((event.span_id, type(event), event.model_dict))

    def _is_inner(self, event: LLMChatStartEvent | LLMCompletionStartEvent) -> bool:
        outer = _OUTER.get()
        if outer is None or outer[0] == event.span_id or outer[1] is type(event) or outer[2] != event.model_dict:
            return False
        call = self._calls.get(outer[0])
        return call is not None and call.first is None

    def _finish(self, key: str | None, observed: Observed | None, error: BaseException | None) -> None:
        call = self._calls.pop(key)
        if call is None:
            return
        if isinstance(error, BudgetExceededError):  # refused by a budget: nothing was sent, nothing to record
            call.finished = time.perf_counter()  # and no later stream may take this call's record id
            return
        record = build_record(call, observed or Observed(), error=error, framework="llama_index", policy=self.policy)
        self.ledger.record(record)


class _SpanDropped(Exception):
    """Stands for an error LlamaIndex reported only as text (its class name becomes the outcome)."""


def _layer(source: Mapping[str, Any], user_key: str, session_key: str) -> Attribution | None:
    user, session = source.get(user_key), source.get(session_key)
    user = user if isinstance(user, str) else None
    session = session if isinstance(session, str) else None
    return Attribution(user=user, session_id=session) if user or session else None


def from_response(response: Any) -> Observed:
    """What a ``ChatResponse`` / ``CompletionResponse`` reports: usage, cost, model, provider, ids.

    ``additional_kwargs`` (of the response and, for chat, of its message) first, then the OpenAI-style
    ``raw`` body or SDK object.
    """
    if response is None:
        return Observed()
    extra: dict[str, Any] = {}
    message = getattr(response, "message", None)
    extra.update(getattr(message, "additional_kwargs", None) or {})
    extra.update(getattr(response, "additional_kwargs", None) or {})
    raw = getattr(response, "raw", None)
    wire = openai_usage(read(raw, "usage"))
    cost = to_cost(extra.get("cost"))
    model = extra.get("model") or read(raw, "model")
    provider = extra.get("provider") or read(raw, "provider")
    generation_id = extra.get("generation_id") or read(raw, "id")

    def tokens(name: str) -> int | None:
        value = to_int(extra.get(name))
        return value if value is not None else wire[name]

    return Observed(
        sent=sent_attribution(extra.get("attribution")),
        model_used=model if isinstance(model, str) else None,
        provider=provider if isinstance(provider, str) else None,
        prompt_tokens=tokens("prompt_tokens"),
        completion_tokens=tokens("completion_tokens"),
        cached_tokens=tokens("cached_tokens"),
        reasoning_tokens=tokens("reasoning_tokens"),
        cost=cost if cost is not None else wire["cost"],
        generation_id=generation_id if isinstance(generation_id, str) else None,
    )


def attach_usage_handler(ledger: Any, **options: Any) -> UsageEventHandler:
    """Record every LlamaIndex LLM call of the process in ``ledger``.

    Adds a :class:`UsageEventHandler` to LlamaIndex's root instrumentation dispatcher, which receives
    the events of every LLM. Call it once per ledger; to stop recording, remove the returned handler:
    ``get_dispatcher().event_handlers.remove(handler)``.

    Args:
        ledger: Anything with ``record(UsageRecord)``, usually a :class:`~openrouter_attribution.UsageLedger`.
        **options: :class:`UsageEventHandler` options (``user_id_tag``, ``session_id_tag``, ``policy``).

    Returns:
        The attached handler.

    Examples:
        >>> from llama_index.core.instrumentation import get_dispatcher
        >>> from llama_index.core.instrumentation.dispatcher import instrument_tags
        >>> from openrouter_attribution import UsageLedger
        >>> from openrouter_attribution.llama_index import OpenRouter
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> ledger = UsageLedger(":memory:")
        >>> handler = attach_usage_handler(ledger)
        >>> with FakeOpenRouter() as server, instrument_tags({"user_id": "app_42"}):
        ...     llm = OpenRouter(model="openai/gpt-4o-mini", api_base=server.base_url, api_key=server.api_key)
        ...     _ = llm.complete("Hello")
        >>> [(r.user, r.outcome, r.cost is not None) for r in ledger.records()]
        [('app_42', 'ok', True)]
        >>> get_dispatcher().event_handlers.remove(handler)
        >>> ledger.close()
    """
    handler = UsageEventHandler(ledger, **options)
    get_dispatcher().add_event_handler(handler)
    return handler
