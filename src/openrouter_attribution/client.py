"""One model call, framework-neutral: resolve -> policy -> build -> budget -> call -> parse -> record.

Both framework adapters hand an :class:`Invoker` their messages (OpenAI chat
format), per-call overrides and attribution layers, and get back parsed
completions or stream chunks; their embeddings classes hand it texts and get
back vectors, and their rerankers a query and documents and get back ranks, through the
same attribution, budget step, transport and usage records. Everything
OpenRouter-specific happens here or below (``wire/``, ``transport``), never in an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from openrouter_attribution import pricing
from openrouter_attribution.attribution import Attribution, resolve
from openrouter_attribution.endpoints import CHAT, Endpoint
from openrouter_attribution.identity import DEFAULT_POLICY, SentId
from openrouter_attribution.missing_user import report_missing_user
from openrouter_attribution.sending import Sender
from openrouter_attribution.transport import EMBEDDINGS_PATH, RERANK_PATH, STREAM_END, ConnectionSettings
from openrouter_attribution.wire.embeddings import (
    build_embedding_bodies,
    check_same_dimensions,
    parse_embeddings,
)
from openrouter_attribution.wire.request import build_attribution_fields, check_parameter_ranges
from openrouter_attribution.wire.rerank import RerankResult, build_rerank_body, parse_rerank
from openrouter_attribution.wire.response import Completion
from openrouter_attribution.wire.stream import StreamAbandoned, StreamMeta

if TYPE_CHECKING:
    from decimal import Decimal

    from openrouter_attribution.keys import OpenRouterUserKeys
    from openrouter_attribution.usage.budgets.group import BudgetGroup, GroupHold
    from openrouter_attribution.usage.records import UsageRecord

__all__ = ["ATTRIBUTION_KWARGS", "Invoker", "Prepared", "StreamMeta"]

ATTRIBUTION_KWARGS = ("user", "session_id", "trace", "openrouter_metadata")
"""Call keywords that set the ``explicit`` attribution layer, in both frameworks."""


class Prepared(NamedTuple):
    """A request ready to send."""

    body: dict[str, Any]
    """The JSON body for the endpoint (``POST /chat/completions``, ``/responses``, ``/embeddings``, ``/rerank``)."""
    attribution: Attribution
    """The attribution that goes out (after the identity policy)."""


class Invoker:
    """Sends chat completions (or Responses API calls) for one configured model. Built by ``OpenRouterOptions``."""

    __slots__ = ("_arecord_call", "_build_record", "budget", "connection", "default", "endpoint", "extra_body",
                 "framework", "ids", "ledger", "params", "require_user", "send")  # fmt: skip

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
        budget: BudgetGroup | None = None,
        user_keys: OpenRouterUserKeys | None = None,
        endpoint: Endpoint = CHAT,
    ) -> None:
        self.budget = budget
        """The budget step (``None``: no budget), see :meth:`hold`."""
        self.connection = connection
        self.params = params
        self.extra_body = extra_body
        self.default = default
        self.require_user = require_user
        self.ledger = ledger
        if ledger is not None:
            # The record builders come with a ledger (whose package is loaded by then): a model without
            # one never imports the usage package.
            from openrouter_attribution.usage.call_records import arecord_call, build_call_record

            self._build_record, self._arecord_call = build_call_record, arecord_call
        self.framework = framework
        self.ids = policy if policy is not None else DEFAULT_POLICY
        """The identity policy applied to ``user``, ``session_id`` and ``metadata`` values."""
        self.send = Sender(connection, user_keys)
        """Sends each request with the model's key, or with its user's own key (``user_keys``)."""
        self.endpoint = endpoint
        """What a model call goes to: chat completions or the Responses API (``endpoints.RESPONSES``)."""

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
                report_missing_user(searched, refuse=self.require_user != "warn")
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

    # -- building ------------------------------------------------------------------------------------

    def split_call_kwargs(self, kwargs: dict[str, Any], *, where: str) -> Attribution | None:
        """Take the attribution keywords out of a call's ``kwargs`` and check what is left.

        ``user``, ``session_id``, ``trace`` and ``openrouter_metadata`` become the ``explicit``
        layer; ``stream`` is dropped (the call style decides); every other keyword must be an
        OpenRouter request field of the endpoint and stays in ``kwargs`` as a per-call override.

        Raises:
            ConfigurationError: a keyword the endpoint does not take, a value outside OpenRouter's documented
                range, or a stateful Responses option (``previous_response_id``), before any I/O.
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
            self.endpoint.check(kwargs, where=where)
            check_parameter_ranges(kwargs, where=where)
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
        body = self.endpoint.build(
            messages=messages,
            params=self.params,
            overrides=overrides,
            attribution_fields=build_attribution_fields(attribution),
            stream=stream,
            extra_body=self.extra_body,
        )
        return Prepared(body, attribution)

    # -- calling -------------------------------------------------------------------------------------

    def stream_meta(self) -> StreamMeta:
        """A new reader for one stream of this model's endpoint (pass it to :meth:`stream`)."""
        return self.endpoint.stream_meta()

    def complete(self, prepared: Prepared) -> Completion:
        """Send a non-streamed request and parse the answer."""
        endpoint = self.endpoint
        with self.hold(prepared) as hold:
            return self._exchange(prepared, hold, endpoint.path, endpoint.parse, endpoint.kind)

    async def acomplete(self, prepared: Prepared) -> Completion:
        """Async :meth:`complete`."""
        endpoint = self.endpoint
        async with await self.ahold(prepared) as hold:
            return await self._aexchange(prepared, hold, endpoint.path, endpoint.parse, endpoint.kind)

    def _exchange(self, prepared: Prepared, hold: Any, path: str, parse: Callable[[Any], Any], kind: str) -> Any:
        """One JSON request inside its budget ``hold``: send, parse, record (errors too); returns the parsed answer."""
        started = time.perf_counter()
        try:
            result = parse(self.send.post(prepared.body, prepared.attribution.user, path))
        except BaseException as err:
            hold.record = self._record(prepared, started, None, error=err, kind=kind)
            raise
        hold.record = self._record(prepared, started, None, source=result, kind=kind)
        return result

    async def _aexchange(self, prepared: Prepared, hold: Any, path: str, parse: Callable[[Any], Any], kind: str) -> Any:
        """Async :meth:`_exchange`."""
        started = time.perf_counter()
        try:
            result = parse(await self.send.apost(prepared.body, prepared.attribution.user, path))
        except BaseException as err:
            hold.record = await self._arecord(prepared, started, None, error=err, kind=kind)
            raise
        hold.record = await self._arecord(prepared, started, None, source=result, kind=kind)
        return result

    def stream(self, prepared: Prepared, meta: StreamMeta) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Send a streamed request; yields ``(delta, finish_reason)`` per chunk and fills ``meta``.

        A mid-stream error event raises the matching typed error; a stream that stops before its
        end raises :class:`~openrouter_attribution.errors.TruncatedStreamError` once the chunks that
        did arrive were yielded. It never ends quietly with a partial answer. The budget is reserved
        when the stream starts and settled when it ends, fails or is abandoned.
        """
        with self.hold(prepared) as hold:
            error: BaseException | None = None
            try:
                for chunk in self.send.stream(prepared.body, prepared.attribution.user, self.endpoint.path):
                    if chunk is STREAM_END:
                        meta.done = True
                        continue
                    yield meta.take(chunk)
                meta.check_end()  # after every chunk received was delivered
            except BaseException as err:
                error = err
                raise
            finally:
                hold.record = self._record(
                    prepared, meta.started, meta.first, source=meta, error=_stream_error(error), kind=self.endpoint.kind
                )

    async def astream(self, prepared: Prepared, meta: StreamMeta) -> AsyncIterator[tuple[dict[str, Any], str | None]]:
        """Async :meth:`stream`."""
        async with await self.ahold(prepared) as hold:
            error: BaseException | None = None
            try:
                async for chunk in self.send.astream(prepared.body, prepared.attribution.user, self.endpoint.path):
                    if chunk is STREAM_END:
                        meta.done = True
                        continue
                    yield meta.take(chunk)
                meta.check_end()
            except BaseException as err:
                error = err
                raise
            finally:
                hold.record = await self._arecord(
                    prepared, meta.started, meta.first, source=meta, error=_stream_error(error), kind=self.endpoint.kind
                )

    # -- budget: one step around every request (chat, embeddings and rerank alike) -------------------

    def hold(self, prepared: Prepared) -> GroupHold | NoHold:
        """Reserve the request's share of its budgets (its user's, its tenant's) before any network I/O; a
        context manager that settles the reservations when the request ends (set ``hold.record`` to its usage record
        inside the block; without one the reservation is released).

        Raises:
            BudgetExceededError: the request would exceed the user's budget (nothing is sent).
            MissingUserError: no user while the budget refuses unattributed calls.
            UsageStoreError: the store cannot be reached (budgets fail closed: nothing is sent).
        """
        guard = self.budget
        if guard is None:
            return NO_HOLD
        return guard.reserve(prepared.attribution, lambda: self._ceiling(prepared.body)) or NO_HOLD

    async def ahold(self, prepared: Prepared) -> GroupHold | NoHold:
        """Async :meth:`hold` (``async with await invoker.ahold(prepared) as hold:``)."""
        guard = self.budget
        if guard is None:
            return NO_HOLD
        if guard.prices_needed(prepared.attribution):
            listing = pricing.listing_for(self.endpoint.priced(prepared.body))
            await pricing.aprices(self.connection, listing)  # the estimate reads the cache
        return await guard.areserve(prepared.attribution, lambda: self._ceiling(prepared.body)) or NO_HOLD

    def _ceiling(self, body: Mapping[str, Any]) -> Decimal | None:
        body = self.endpoint.priced(body)
        return pricing.ceiling(pricing.prices(self.connection, pricing.listing_for(body)), body)

    # -- usage records -------------------------------------------------------------------------------

    def _record(
        self,
        prepared: Prepared,
        started: float,
        first: float | None,
        *,
        source: Any = None,
        error: BaseException | None = None,
        kind: str = "chat",
    ) -> UsageRecord | None:
        """Write and return the usage record of one request: ``source`` is the parsed ``Completion``, the
        stream's ``StreamMeta``, the ``EmbeddingResult`` or the ``RerankResult`` (``None`` when nothing arrived)."""
        ledger = self.ledger
        if ledger is None:
            return None
        record = self._build_record(
            prepared.body, prepared.attribution, started, first, source, error, self.framework, kind
        )
        ledger.record(record)
        return record

    async def _arecord(
        self,
        prepared: Prepared,
        started: float,
        first: float | None,
        *,
        source: Any = None,
        error: BaseException | None = None,
        kind: str = "chat",
    ) -> UsageRecord | None:
        """Async :meth:`_record`: the event loop keeps running while a durable ledger commits."""
        if self.ledger is None:
            return None
        return await self._arecord_call(
            self.ledger, prepared.body, prepared.attribution, started, first, source, error, self.framework, kind
        )

    # -- embeddings: the same attribution, transport, error translation and record path ---------------

    def prepare_embeddings(self, inputs: Sequence[str], attribution: Attribution, *, batch_size: int) -> list[Prepared]:
        """Build the ``POST /embeddings`` bodies for ``inputs``, ``batch_size`` texts at most each.

        Raises:
            InvalidInputError: ``inputs`` is not a list of non-empty strings (before any I/O).
            AttributionError: ``session_id`` or ``trace`` breaks OpenRouter's limits.
        """
        bodies = build_embedding_bodies(
            inputs, params=self.params, attribution=attribution, batch_size=batch_size, extra_body=self.extra_body
        )
        return [Prepared(body, attribution) for body in bodies]

    def embed(self, batches: Sequence[Prepared]) -> list[list[float]]:
        """Send the batches in order; one vector per input, one usage record per request.

        With a budget, every request of the call is reserved before the first is sent: a call that does
        not fit raises ``BudgetExceededError`` and sends nothing.
        """
        vectors: list[list[float]] = []
        with contextlib.ExitStack() as stack:
            reserved: list[tuple[Prepared, GroupHold | NoHold]] = []
            for prepared in batches:  # all reserved first; a refusal releases those already taken
                reserved.append((prepared, self.hold(prepared)))
                stack.enter_context(reserved[-1][1])
            for prepared, hold in reserved:
                parse = functools.partial(parse_embeddings, expected=len(prepared.body["input"]))
                vectors += self._exchange(prepared, hold, EMBEDDINGS_PATH, parse, "embeddings").vectors
        if len(batches) > 1:  # each batch's answer was checked when parsed; across batches only here
            check_same_dimensions(vectors)
        return vectors

    async def aembed(self, batches: Sequence[Prepared]) -> list[list[float]]:
        """Async :meth:`embed`."""
        vectors: list[list[float]] = []
        async with contextlib.AsyncExitStack() as stack:
            reserved: list[tuple[Prepared, GroupHold | NoHold]] = []
            for prepared in batches:
                reserved.append((prepared, await self.ahold(prepared)))
                await stack.enter_async_context(reserved[-1][1])
            for prepared, hold in reserved:
                parse = functools.partial(parse_embeddings, expected=len(prepared.body["input"]))
                vectors += (await self._aexchange(prepared, hold, EMBEDDINGS_PATH, parse, "embeddings")).vectors
        if len(batches) > 1:  # each batch's answer was checked when parsed; across batches only here
            check_same_dimensions(vectors)
        return vectors

    # -- rerank: one request per call, on the same budget step, transport and record path ----------------

    def prepare_rerank(self, query: str, documents: Sequence[str], attribution: Attribution) -> Prepared:
        """Build the ``POST /rerank`` body that ranks ``documents`` for ``query``.

        Raises:
            InvalidInputError: an empty query, no documents, or a document that is empty or not a string
                (before any I/O).
            ConfigurationError: ``top_n`` is below 1.
            AttributionError: ``session_id`` or ``trace`` breaks OpenRouter's limits.
        """
        body = build_rerank_body(
            query, documents, params=self.params, attribution=attribution, extra_body=self.extra_body
        )
        return Prepared(body, attribution)

    def rerank(self, prepared: Prepared) -> RerankResult:
        """Send a rerank request; one usage record (``kind="rerank"``). The budget is reserved first."""
        parse = functools.partial(parse_rerank, expected=len(prepared.body["documents"]))
        with self.hold(prepared) as hold:
            return self._exchange(prepared, hold, RERANK_PATH, parse, "rerank")

    async def arerank(self, prepared: Prepared) -> RerankResult:
        """Async :meth:`rerank`."""
        parse = functools.partial(parse_rerank, expected=len(prepared.body["documents"]))
        async with await self.ahold(prepared) as hold:
            return await self._aexchange(prepared, hold, RERANK_PATH, parse, "rerank")


class NoHold:
    """The hold of a request without a budget: nothing reserved, nothing to settle."""

    __slots__ = ()
    record = property(lambda self: None, lambda self, value: None, doc="Ignored: nothing was reserved.")

    def __enter__(self) -> NoHold:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> NoHold:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


NO_HOLD = NoHold()


def _stream_error(error: BaseException | None) -> BaseException | None:
    """What ended a stream, as its usage record tells it: a consumer that stopped reading or cancelled
    abandoned the stream."""
    if isinstance(error, (GeneratorExit, asyncio.CancelledError)):
        return StreamAbandoned()
    return error
