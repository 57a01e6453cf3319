"""One model call, framework-neutral: resolve -> policy -> build -> call -> parse -> record.

Both framework adapters hand an :class:`Invoker` their messages (OpenAI chat
format), per-call overrides and attribution layers, and get back parsed
completions or stream chunks. Everything OpenRouter-specific happens here or
below (``wire/``, ``transport``), never in an adapter.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, NamedTuple

from openrouter_attribution.attribution import LAYERS, Attribution, resolve
from openrouter_attribution.errors import MissingUserError
from openrouter_attribution.identity import validate_user_id
from openrouter_attribution.transport import (
    ConnectionSettings,
    apost_json,
    apost_stream,
    post_json,
    post_stream,
)
from openrouter_attribution.wire.request import build_attribution_fields, build_body, check_request_fields
from openrouter_attribution.wire.response import Completion, Usage, parse_chunk, parse_completion

__all__ = ["ATTRIBUTION_KWARGS", "Invoker", "Prepared", "StreamMeta"]

ATTRIBUTION_KWARGS = ("user", "session_id", "trace", "openrouter_metadata")
"""Call keywords that set the ``explicit`` attribution layer, in both frameworks."""

logger = logging.getLogger("openrouter_attribution")

_PACKAGE_PREFIXES = ("openrouter_attribution", "langchain", "langgraph", "llama_index", "workflows", "asyncio",
                     "concurrent", "threading", "contextvars", "pydantic", "tenacity")  # fmt: skip


class Prepared(NamedTuple):
    """A request ready to send."""

    body: dict[str, Any]
    """The JSON body for ``POST /chat/completions``."""
    attribution: Attribution
    """The attribution that goes out (after the identity policy)."""


class StreamMeta:
    """What a stream has told so far about its generation (filled while it is consumed)."""

    __slots__ = ("finish_reason", "first", "id", "model", "provider", "started", "usage")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.provider: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.started = time.perf_counter()
        self.first: float | None = None
        """``time.perf_counter()`` when the first chunk arrived."""

    def take(self, chunk: Any) -> tuple[dict[str, Any], str | None]:
        """Parse one chunk, note what it says about the generation, return ``(delta, finish_reason)``."""
        delta, finish_reason, usage = parse_chunk(chunk)
        if self.first is None:
            self.first = time.perf_counter()
            self.id = chunk.get("id")
            self.model = chunk.get("model")
            self.provider = chunk.get("provider")
        if usage is not None:
            self.usage = usage
        if finish_reason is not None:
            self.finish_reason = finish_reason
        return delta, finish_reason


class Invoker:
    """Sends chat completions for one configured model. Built by ``OpenRouterOptions``."""

    __slots__ = ("connection", "default", "extra_body", "framework", "ledger", "params", "policy",
                 "require_user", "_warned_sites")  # fmt: skip

    def __init__(
        self,
        *,
        connection: ConnectionSettings,
        params: dict[str, Any],
        extra_body: Mapping[str, Any] | None,
        default: Attribution,
        policy: Any,
        require_user: bool | str,
        ledger: Any,
        framework: str,
    ) -> None:
        self.connection = connection
        self.params = params
        self.extra_body = extra_body
        self.default = default
        self.policy = policy
        self.require_user = require_user
        self.ledger = ledger
        self.framework = framework
        self._warned_sites: set[tuple[str, int]] = set()

    # -- attribution ---------------------------------------------------------------------------------

    def attribute(
        self,
        *,
        searched: Mapping[str, tuple[str, ...]] | None = None,
        **layers: Attribution | None,
    ) -> Attribution:
        """Resolve the attribution of one call and apply the identity policy to its user.

        Args:
            searched: Per layer name, human-readable names of the places the adapter looked
                for a user, for the :class:`MissingUserError` message.
            **layers: The framework's layers by name (``explicit``, ``authenticated``,
                ``invocation``, ``runtime``, ``ambient``, ``fallback``; see
                :mod:`openrouter_attribution.attribution` for the order). The ``context`` layer
                is read from :func:`~openrouter_attribution.user_context`, ``default`` is the model's.

        Raises:
            MissingUserError: no user resolved while ``require_user=True``.
            UserIdError: the user id is invalid or rejected by the policy.
        """
        resolved = resolve(default=self.default, **layers).attribution
        user = resolved.user
        if user is None:
            if self.require_user:
                self._missing_user(searched)
            return resolved
        sent = self.policy.apply(user) if self.policy is not None else validate_user_id(user)
        if sent is user:
            return resolved
        return Attribution(sent, resolved.session_id, resolved.trace, resolved.metadata)

    def _missing_user(self, searched: Mapping[str, tuple[str, ...]] | None) -> None:
        named = {**(searched or {}), "context": ("user_context()",), "default": ("the model's `user` field",)}
        places = [place for layer in LAYERS for place in named.get(layer, ())]
        message = (
            "No end-user id was found for this call, and the model requires one (require_user). Looked in: "
            + "; ".join(places)
            + ". Pass user=... to the call, set it in the run config, or wrap the call in user_context(...)."
        )
        if self.require_user != "warn":
            raise MissingUserError(message, searched=tuple(places))
        site = _call_site()
        if site not in self._warned_sites:
            self._warned_sites.add(site)
            logger.warning("%s (call site %s:%d; warned once per call site)", message, *site)

    # -- building ------------------------------------------------------------------------------------

    @staticmethod
    def split_call_kwargs(kwargs: dict[str, Any], *, where: str) -> Attribution | None:
        """Take the attribution keywords out of a call's ``kwargs`` and check what is left.

        ``user``, ``session_id``, ``trace`` and ``openrouter_metadata`` become the ``explicit``
        layer; ``stream`` is dropped (the call style decides); every other keyword must be an
        OpenRouter request field and stays in ``kwargs`` as a per-call override.

        Raises:
            ConfigurationError: a keyword OpenRouter does not document (before any I/O).
        """
        explicit = None
        if any(name in kwargs for name in ATTRIBUTION_KWARGS):
            explicit = Attribution(
                user=kwargs.pop("user", None),
                session_id=kwargs.pop("session_id", None),
                trace=kwargs.pop("trace", None),
                metadata=kwargs.pop("openrouter_metadata", None),
            )
        kwargs.pop("stream", None)
        if kwargs:
            check_request_fields(kwargs, where=where)
        return explicit

    def prepare(
        self,
        messages: list[dict[str, Any]],
        attribution: Attribution,
        *,
        overrides: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> Prepared:
        """Build the request body; validates the attribution fields against OpenRouter's limits."""
        body = build_body(
            messages=messages,
            params=self.params,
            overrides=overrides,
            attribution_fields=build_attribution_fields(attribution),
            stream=stream,
            extra_body=self.extra_body,
        )
        return Prepared(body, attribution)

    # -- calling -------------------------------------------------------------------------------------

    def complete(self, prepared: Prepared) -> Completion:
        """Send a non-streamed request and parse the answer."""
        started = time.perf_counter()
        try:
            completion = parse_completion(post_json(self.connection, prepared.body))
        except BaseException as err:
            self._record(prepared, started, None, error=err)
            raise
        self._record(prepared, started, None, completion=completion)
        return completion

    async def acomplete(self, prepared: Prepared) -> Completion:
        """Async :meth:`complete`."""
        started = time.perf_counter()
        try:
            completion = parse_completion(await apost_json(self.connection, prepared.body))
        except BaseException as err:
            await self._arecord(prepared, started, None, error=err)
            raise
        await self._arecord(prepared, started, None, completion=completion)
        return completion

    def stream(self, prepared: Prepared, meta: StreamMeta) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Send a streamed request; yields ``(delta, finish_reason)`` per chunk and fills ``meta``.

        A mid-stream error event raises the matching typed error; it never ends the stream quietly.
        """
        error: BaseException | None = None
        try:
            for chunk in post_stream(self.connection, prepared.body):
                yield meta.take(chunk)
        except BaseException as err:
            error = err
            raise
        finally:
            self._record_stream(prepared, meta, error)

    async def astream(
        self, prepared: Prepared, meta: StreamMeta
    ) -> AsyncIterator[tuple[dict[str, Any], str | None]]:
        """Async :meth:`stream`."""
        error: BaseException | None = None
        try:
            async for chunk in apost_stream(self.connection, prepared.body):
                yield meta.take(chunk)
        except BaseException as err:
            error = err
            raise
        finally:
            if self.ledger is not None:
                await self._record_stream(prepared, meta, error, wait=True)

    # -- usage records -------------------------------------------------------------------------------

    def _record_stream(
        self, prepared: Prepared, meta: StreamMeta, error: BaseException | None, *, wait: bool = False
    ) -> Any:
        """Record a finished stream; with ``wait`` returns an awaitable (the async path)."""
        if self.ledger is None:
            return None
        if (error is None and meta.usage is None) or isinstance(error, GeneratorExit):
            error = _Abandoned()
        if wait:
            return self._arecord(prepared, meta.started, meta.first, meta=meta, error=error)
        self._record(prepared, meta.started, meta.first, meta=meta, error=error)
        return None

    def _record(
        self,
        prepared: Prepared,
        started: float,
        first: float | None,
        *,
        completion: Completion | None = None,
        meta: StreamMeta | None = None,
        error: BaseException | None = None,
    ) -> None:
        if self.ledger is None:
            return
        _record_call(
            self.ledger,
            body=prepared.body,
            attribution=prepared.attribution,
            started=started,
            first=first,
            source=completion or meta,
            error=error,
            framework=self.framework,
        )

    async def _arecord(
        self,
        prepared: Prepared,
        started: float,
        first: float | None,
        *,
        completion: Completion | None = None,
        meta: StreamMeta | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Async :meth:`_record`: the event loop keeps running while a durable ledger commits."""
        if self.ledger is None:
            return
        await _arecord_call(
            self.ledger,
            body=prepared.body,
            attribution=prepared.attribution,
            started=started,
            first=first,
            source=completion or meta,
            error=error,
            framework=self.framework,
        )


def _load_record_call(*args: Any, **kwargs: Any) -> None:
    """The first recorded call imports ``usage.calls`` (which loads the whole usage package, kept out of
    ``import openrouter_attribution``); later calls go straight to it instead of importing again."""
    global _record_call, _arecord_call
    from openrouter_attribution.usage.calls import arecord_call, record_call

    _record_call, _arecord_call = record_call, arecord_call
    record_call(*args, **kwargs)


async def _load_arecord_call(*args: Any, **kwargs: Any) -> None:
    """Async :func:`_load_record_call`."""
    global _record_call, _arecord_call
    from openrouter_attribution.usage.calls import arecord_call, record_call

    _record_call, _arecord_call = record_call, arecord_call
    await arecord_call(*args, **kwargs)


_record_call: Any = _load_record_call
_arecord_call: Any = _load_arecord_call


class _Abandoned(Exception):
    """Marks a stream its consumer stopped reading before the final usage chunk."""


def _call_site() -> tuple[str, int]:
    """File and line of the first caller frame outside this library and the frameworks."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_PACKAGE_PREFIXES):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0
