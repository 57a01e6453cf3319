"""One model call, framework-neutral: resolve -> policy -> build -> call -> parse -> record.

Both framework adapters hand an :class:`Invoker` their messages (OpenAI chat
format), per-call overrides and attribution layers, and get back parsed
completions or stream chunks. Everything OpenRouter-specific happens here or
below (``wire/``, ``transport``), never in an adapter.
"""

from __future__ import annotations

import asyncio
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, NamedTuple

from openrouter_attribution.attribution import LAYERS, Attribution, resolve
from openrouter_attribution.errors import (
    InvalidResponseError,
    MissingUserError,
    MissingUserWarning,
    TruncatedStreamError,
)
from openrouter_attribution.identity import DEFAULT_POLICY, SentId
from openrouter_attribution.transport import (
    STREAM_END,
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

    __slots__ = ("chunks", "done", "finish_reason", "first", "id", "model", "provider", "started", "usage")

    def __init__(self) -> None:
        self.chunks = 0
        """Chunks received so far."""
        self.done = False
        """Whether the stream's ``data: [DONE]`` arrived."""
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
        self.chunks += 1
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

    def check_end(self) -> None:
        """Raise unless the stream reached its end (``[DONE]``, or a ``finish_reason`` and the final usage).

        Raises:
            InvalidResponseError: the 200 response carried no event at all.
            TruncatedStreamError: events arrived, then the body ended before the stream's end.
        """
        if self.done or (self.finish_reason is not None and self.usage is not None):
            return
        if self.first is None:
            raise InvalidResponseError(
                "OpenRouter answered the streamed request with HTTP 200 and an empty body (no event)."
            )
        missing = [name for name, seen in (("finish_reason", self.finish_reason is not None),
                                           ("usage", self.usage is not None)) if not seen]  # fmt: skip
        raise TruncatedStreamError(
            f"The stream ended after {self.chunks} chunk(s) without its end (no {', no '.join(missing)}, "
            "no data: [DONE]): the answer received is incomplete. The connection was probably closed by "
            "a proxy or the network; retry the call.",
            generation_id=self.id,
        )


class Invoker:
    """Sends chat completions for one configured model. Built by ``OpenRouterOptions``."""

    __slots__ = ("connection", "default", "extra_body", "framework", "ids", "ledger", "params", "policy",
                 "require_user")  # fmt: skip

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
        self.ids = policy if policy is not None else DEFAULT_POLICY
        """The identity policy applied to ``user``, ``session_id`` and ``metadata`` values."""

    # -- attribution ---------------------------------------------------------------------------------

    def attribute(
        self,
        *,
        searched: Mapping[str, tuple[str, ...]] | None = None,
        **layers: Attribution | None,
    ) -> Attribution:
        """Resolve the attribution of one call and apply the identity policy to it.

        Without a ``user_policy`` the :data:`~openrouter_attribution.identity.DEFAULT_POLICY` applies:
        personal data in ``user``, ``session_id`` or a ``metadata`` value is refused. Values marked
        :class:`~openrouter_attribution.identity.SentId` already went through the policy.

        Args:
            searched: Per layer name, human-readable names of the places the adapter looked
                for a user, for the :class:`MissingUserError` message.
            **layers: The framework's layers by name (``explicit``, ``authenticated``,
                ``invocation``, ``runtime``, ``ambient``, ``fallback``; see
                :mod:`openrouter_attribution.attribution` for the order). The ``context`` layer
                is read from :func:`~openrouter_attribution.user_context`, ``default`` is the model's.

        Returns:
            The attribution as it is sent (plain ``str`` ids).

        Raises:
            MissingUserError: no user resolved while ``require_user=True``.
            UserIdError: an id is invalid or carries personal data the policy rejects.
        """
        resolved = resolve(default=self.default, **layers).attribution
        user, session, metadata = resolved.user, resolved.session_id, resolved.metadata
        ids = self.ids
        if user is None:
            if self.require_user:
                self._missing_user(searched)
            sent_user = None
        else:
            sent_user = ids.apply(user)
        sent_session = None if session is None else ids.apply_session(session)
        sent_metadata = ids.apply_metadata(metadata) if metadata else metadata
        if sent_user is user and sent_session is session and sent_metadata is metadata:
            return resolved
        return Attribution(sent_user, sent_session, resolved.trace, sent_metadata)

    def sent_call_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """A call's keywords with ``user``, ``session_id`` and ``openrouter_metadata`` as they will be sent.

        For adapters whose framework shows the call's keywords to callbacks or instrumentation before
        the model runs: only the id as sent may reach them. The ids come back marked
        :class:`~openrouter_attribution.identity.SentId`, so :meth:`attribute` does not apply the
        policy (and a ``transform`` hook) a second time.

        Raises:
            UserIdError: an id is invalid or carries personal data the policy rejects (before any I/O).
        """
        user, session, metadata = kwargs.get("user"), kwargs.get("session_id"), kwargs.get("openrouter_metadata")
        if user is None and session is None and not metadata:
            return kwargs
        ids = self.ids
        sent = dict(kwargs)
        if user is not None:
            sent["user"] = SentId(ids.apply(user))
        if session is not None:
            sent["session_id"] = SentId(ids.apply_session(session))
        if metadata:
            sent["openrouter_metadata"] = ids.apply_metadata(metadata)
        return sent

    def _missing_user(self, searched: Mapping[str, tuple[str, ...]] | None) -> None:
        named = {**(searched or {}), "context": ("user_context()",), "default": ("the model's `user` field",)}
        places = [place for layer in LAYERS for place in named.get(layer, ())]
        message = (
            "No end-user id was found for this call. Looked in: " + "; ".join(places) + ". Pass user=... "
            "to the call, set it in the run config, or wrap the call in user_context(...)"
        )
        if self.require_user != "warn":
            raise MissingUserError(message + " (require_user=True: calls without a user are refused).",
                                   searched=tuple(places))  # fmt: skip
        filename, lineno, module = _call_site()
        if (filename, lineno) in _WARNED_SITES:
            return
        _WARNED_SITES.add((filename, lineno))
        warnings.warn_explicit(
            message + "; or set require_user=False on the model to allow unattributed calls "
            "(warned once per call site).",
            MissingUserWarning,
            filename,
            lineno,
            module=module,
        )

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
            self._record(prepared, started, None, error=err)
            raise
        self._record(prepared, started, None, completion=completion)
        return completion

    def stream(self, prepared: Prepared, meta: StreamMeta) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Send a streamed request; yields ``(delta, finish_reason)`` per chunk and fills ``meta``.

        A mid-stream error event raises the matching typed error; a stream that stops before its
        end raises :class:`~openrouter_attribution.errors.TruncatedStreamError` once the chunks that
        did arrive were yielded. It never ends quietly with a partial answer.
        """
        error: BaseException | None = None
        try:
            for chunk in post_stream(self.connection, prepared.body):
                if chunk is STREAM_END:
                    meta.done = True
                    continue
                yield meta.take(chunk)
            meta.check_end()  # after every chunk received was delivered
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
                if chunk is STREAM_END:
                    meta.done = True
                    continue
                yield meta.take(chunk)
            meta.check_end()
        except BaseException as err:
            error = err
            raise
        finally:
            self._record_stream(prepared, meta, error)

    # -- usage records -------------------------------------------------------------------------------

    def _record_stream(self, prepared: Prepared, meta: StreamMeta, error: BaseException | None) -> None:
        if self.ledger is None:
            return
        if isinstance(error, (GeneratorExit, asyncio.CancelledError)):
            error = _Abandoned()  # the consumer stopped reading or cancelled
        self._record(prepared, meta.started, meta.first, meta=meta, error=error)

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
        from openrouter_attribution.usage.calls import record_call

        record_call(
            self.ledger,
            body=prepared.body,
            attribution=prepared.attribution,
            started=started,
            first=first,
            source=completion or meta,
            error=error,
            framework=self.framework,
        )


class _Abandoned(Exception):
    """Marks a stream its consumer stopped reading (or cancelled) before its end."""


_WARNED_SITES: set[tuple[str, int]] = set()
"""Call sites already warned about a missing user (process-wide: one warning per call site)."""


def _call_site() -> tuple[str, int, str]:
    """File, line and module of the first caller frame outside this library and the frameworks."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_PACKAGE_PREFIXES):
            return frame.f_code.co_filename, frame.f_lineno, module
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0, ""
