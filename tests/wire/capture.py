"""Recorders for everything a framework hands to observers: callbacks, tracer runs, events, spans, logs.

The privacy tests run a call with a recorder attached and search what it saw (as JSON text) for the
raw id: only the id as sent may appear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.base import BaseTracer
from llama_index.core.callbacks.base_handler import BaseCallbackHandler as LlamaCallbackHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index_instrumentation.span_handlers import BaseSpanHandler


def as_text(value: Any) -> str:
    """Everything in ``value``, as JSON with ``repr`` for what JSON cannot hold."""
    return json.dumps(value, default=repr, ensure_ascii=False)


class LangChainRecorder(BaseCallbackHandler):
    """Records the arguments of every LangChain callback it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") and name in dir(BaseCallbackHandler):
            calls = object.__getattribute__(self, "calls")

            def record(*args: Any, **kwargs: Any) -> None:
                calls.append((name, args, kwargs))

            return record
        return object.__getattribute__(self, name)

    def text(self) -> str:
        assert self.calls, "no callback was received"
        return as_text(self.calls)


class RunRecorder(BaseTracer):
    """A tracer like LangSmith's: keeps every finished run (inputs, outputs, extra, metadata, serialized)."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Any] = []

    def _persist_run(self, run: Any) -> None:
        self.runs.append(run)

    def text(self) -> str:
        assert self.runs, "no run was traced"
        runs = [run.model_dump() for run in self.runs]
        return as_text(runs) + as_text([child.model_dump() for run in self.runs for child in run.child_runs])


class _EventRecorder(BaseEventHandler):
    events: list[Any] = []

    @classmethod
    def class_name(cls) -> str:
        return "PrivacyEventRecorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)


class _SpanRecorder(BaseSpanHandler[Any]):
    calls: list[Any] = []

    def new_span(self, id_: str, bound_args: Any, instance: Any = None, parent_span_id: Any = None,
                 tags: Any = None, **kwargs: Any) -> None:  # fmt: skip
        self.calls.append(("enter", id_, dict(bound_args.arguments), tags))

    def prepare_to_exit_span(
        self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> None:
        self.calls.append(("exit", id_, dict(bound_args.arguments), result))

    def prepare_to_drop_span(
        self, id_: str, bound_args: Any, instance: Any = None, err: Any = None, **kwargs: Any
    ) -> None:
        self.calls.append(("drop", id_, dict(bound_args.arguments), err))


class _LegacyRecorder(LlamaCallbackHandler):
    def __init__(self) -> None:
        super().__init__([], [])
        self.payloads: list[Any] = []

    def on_event_start(
        self, event_type: Any, payload: Any = None, event_id: str = "", parent_id: str = "", **kwargs: Any
    ) -> str:
        self.payloads.append((event_type, payload))
        return event_id

    def on_event_end(self, event_type: Any, payload: Any = None, event_id: str = "", **kwargs: Any) -> None:
        self.payloads.append((event_type, payload))

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(self, trace_id: str | None = None, trace_map: Any = None) -> None:
        return None


class LlamaIndexRecorder:
    """What LlamaIndex's instrumentation (events, spans) and legacy callbacks saw."""

    def __init__(self, events: list[Any], spans: list[Any], legacy: _LegacyRecorder) -> None:
        self.events = events
        self.spans = spans
        self.legacy = legacy

    def text(self) -> str:
        assert self.events, "no instrumentation event was received"
        assert self.spans, "no span was received"
        assert self.legacy.payloads, "no callback payload was received"
        events = [event.model_dump() for event in self.events]
        return as_text(events) + as_text(self.spans) + as_text(self.legacy.payloads)


@contextmanager
def llama_index_recorder(llm: Any) -> Iterator[LlamaIndexRecorder]:
    """Attach event, span and callback recorders (the span one to the root dispatcher) for the block."""
    from llama_index.core.callbacks import CallbackManager

    dispatcher = get_dispatcher()
    events = _EventRecorder()
    events.events = []
    spans = _SpanRecorder()
    spans.calls = []
    legacy = _LegacyRecorder()
    dispatcher.add_event_handler(events)
    dispatcher.add_span_handler(spans)
    llm.callback_manager = CallbackManager([legacy])
    try:
        yield LlamaIndexRecorder(events.events, spans.calls, legacy)
    finally:
        dispatcher.event_handlers.remove(events)
        dispatcher.span_handlers.remove(spans)
