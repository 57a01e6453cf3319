"""LlamaIndex's ambient context as an attribution layer.

``with instrument_tags({"user_id": "app_42"}):`` sets LlamaIndex's
``active_instrument_tags`` context variable; LlamaIndex tags every
instrumentation event with it and carries it into workflow runs and their steps
(it is captured when ``Workflow.run()`` is called and restored inside the run's
task, see ``workflows.plugins.basic.BasicRuntime.run_workflow``). The
:class:`~openrouter_attribution.llama_index.OpenRouter` model reads it on every
call as the ``ambient`` layer of the resolution order.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import AsyncGenerator, Generator
from typing import Any

from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import active_instrument_tags
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.synthesis import SynthesizeEndEvent

from openrouter_attribution.attribution import Attribution

__all__ = ["bind_stream_to_context", "install_stream_binder", "tag_attribution", "tag_layer"]


def tag_layer(user_tag: str, session_tag: str) -> Attribution | None:
    """The attribution set by the active ``instrument_tags`` block, or ``None`` outside any.

    Args:
        user_tag: Tag key that holds the end-user id (the model's ``user_id_tag``).
        session_tag: Tag key that holds the session id (the model's ``session_id_tag``).

    Example:
        >>> from llama_index.core.instrumentation.dispatcher import instrument_tags
        >>> with instrument_tags({"user_id": "app_42"}):
        ...     tag_layer("user_id", "session_id").user
        'app_42'
    """
    tags: dict[str, Any] = active_instrument_tags.get()
    if not tags:
        return None
    user = tags.get(user_tag)
    session = tags.get(session_tag)
    if user is None and session is None:
        return None
    return Attribution(user=user, session_id=session)


def tag_attribution(invoker: Any, user_tag: str, session_tag: str) -> Attribution:
    """The attribution, as sent, of a call that takes no keywords (embeddings, rerank): from
    ``user_context``, the active ``instrument_tags`` block and the model's own fields.

    Raises:
        MissingUserError: no user resolved while ``require_user=True``.
        UserIdError: an id is invalid or carries personal data the policy rejects.
    """
    return invoker.attribute(
        searched={"ambient": (f"instrument_tags({{{user_tag!r}: ...}})",)}, ambient=tag_layer(user_tag, session_tag)
    )


# -- lazily started streams of query and chat engines ---------------------------------------------------
#
# LlamaIndex's default response synthesizer (compact / refine) returns a StreamingResponse whose
# `response_gen` is a generator function's generator (`Refine.stream_call` / `astream_call` in
# llama_index/core/response_synthesizers/refine.py): the LLM is only called when the caller starts
# reading the stream. Readers often do that after `query()` returned and outside the caller's
# context (a web framework streaming the body after the handler exited, another thread or task),
# so the LLM call would no longer see the caller's `user_context` or `instrument_tags`. The handler
# below rebinds such streams, when the synthesizer emits them, to a copy of the context they were
# created in.


def _bound_gen(gen: Generator[Any, Any, Any], ctx: contextvars.Context) -> Generator[Any, None, None]:
    try:
        while True:
            try:
                item = ctx.run(next, gen)
            except StopIteration:
                return
            yield item
    finally:
        ctx.run(gen.close)


async def _bound_agen(agen: AsyncGenerator[Any, Any], ctx: contextvars.Context) -> AsyncGenerator[Any, None]:
    # Each step runs as a task *in* `ctx` (not a copy), so context variables set and reset across
    # steps of the inner generator (LlamaIndex spans do that) stay consistent.
    loop = asyncio.get_running_loop()
    try:
        while True:
            task: asyncio.Task[Any] = loop.create_task(_next(agen), context=ctx)  # type: ignore[call-arg,unused-ignore]
            try:
                item = await asyncio.shield(task)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                task.cancel()
                raise
            yield item
    finally:
        await loop.create_task(agen.aclose(), context=ctx)  # type: ignore[call-arg,unused-ignore]


async def _next(agen: AsyncGenerator[Any, Any]) -> Any:
    return await agen.__anext__()


def bind_stream_to_context(response: Any, ctx: contextvars.Context | None = None) -> None:
    """Make a LlamaIndex ``StreamingResponse`` / ``AsyncStreamingResponse`` read in ``ctx``.

    ``ctx`` defaults to a copy of the current context. Already bound or finished streams are left
    alone.
    """
    gen = getattr(response, "response_gen", None)
    if gen is None or getattr(response, "response_txt", None) is not None:
        return
    if isinstance(response, StreamingResponse) and inspect.isgenerator(gen) and gen.gi_code is not _BOUND_CODE:
        response.response_gen = _bound_gen(gen, ctx or contextvars.copy_context())
    elif isinstance(response, AsyncStreamingResponse) and inspect.isasyncgen(gen) and gen.ag_code is not _ABOUND_CODE:
        response.response_gen = _bound_agen(gen, ctx or contextvars.copy_context())


_BOUND_CODE = _bound_gen.__code__
_ABOUND_CODE = _bound_agen.__code__


class _StreamBinder(BaseEventHandler):
    """Binds the streams that response synthesizers return to their caller's context."""

    @classmethod
    def class_name(cls) -> str:
        return "OpenRouterAttributionStreamBinder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, SynthesizeEndEvent):
            bind_stream_to_context(event.response)


_install_lock = threading.Lock()


def install_stream_binder() -> None:
    """Register the stream binder on LlamaIndex's root dispatcher, unless it is there already (an app that
    resets the dispatcher's handlers gets it again with the next model it builds)."""
    dispatcher = get_dispatcher()
    if any(isinstance(handler, _StreamBinder) for handler in dispatcher.event_handlers):
        return
    with _install_lock:
        if not any(isinstance(handler, _StreamBinder) for handler in dispatcher.event_handlers):
            dispatcher.add_event_handler(_StreamBinder())
