"""A LangChain callback handler that writes every chat model call to a usage ledger.

Attach :class:`UsageCallbackHandler` to any LangChain chat model or LLM (this
library's :class:`~openrouter_attribution.langchain.ChatOpenRouter`, ``ChatOpenAI``
pointed at OpenRouter, a fake model in tests, ...) through ``config={"callbacks":
[handler]}``, ``model.with_config(callbacks=[handler])`` or ``callbacks=[handler]``
at construction. Glue only: the record is built by
:mod:`openrouter_attribution.usage.handler_records`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from openrouter_attribution.attribution import Attribution, resolve
from openrouter_attribution.errors import BudgetExceededError
from openrouter_attribution.langchain.config import call_layers
from openrouter_attribution.usage.handler_records import (
    EMPTY,
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

__all__ = ["UsageCallbackHandler"]


class UsageCallbackHandler(BaseCallbackHandler):
    """Record the usage of every LangChain model call in a usage ledger, one record per call.

    Use it for chat models this library did not build, or to add a ledger without changing how a
    model is constructed. It can be combined with a :class:`~openrouter_attribution.langchain.ChatOpenRouter`
    that has ``ledger=``: both write the call under one record id (the generation id, or the id the
    model attached to the error it raised), so each call is one record.

    Who a call is for: for this library's models, the ``attribution`` in the answer's
    ``response_metadata`` (what was actually sent, after the model's identity policy). Otherwise the
    library's resolution order, as :class:`~openrouter_attribution.langchain.ChatOpenRouter` applies it:
    LangGraph Platform's ``configurable["langgraph_auth_user_id"]``, ``config["configurable"]`` keys
    ``user_id_key`` / ``session_id_key``, the run ``metadata`` keys ``user_id_key`` / ``langfuse_user_id``
    and ``session_id_key`` / ``langfuse_session_id``, the LangGraph runtime context, the active
    :func:`~openrouter_attribution.user_context`, then ``thread_id`` as the session. LangChain does not
    hand ``configurable`` to callbacks: it is seen for ``ChatOpenRouter`` and for models run inside a
    chain or graph; a third-party model invoked directly needs the user in ``config["metadata"]`` or a
    :func:`~openrouter_attribution.user_context`. Cost comes from ``response_metadata["cost"]`` or the
    OpenAI-style ``token_usage`` (``cost`` as OpenRouter reports it) and stays ``None`` when the model
    does not report one.

    The handler is thread-safe (its state lives per ``run_id`` and is removed at the end or error
    of each run), runs inline in async calls (``run_inline``) so the time to first token is exact,
    and never raises: problems are logged at debug level on ``openrouter_attribution.usage``.

    Args:
        ledger: Anything with ``record(UsageRecord)``, usually a :class:`~openrouter_attribution.UsageLedger`.
        user_id_key: Run metadata key that holds the end-user id.
        session_id_key: Run metadata key that holds the session id.
        policy: Optional :class:`~openrouter_attribution.UserIdPolicy` applied to the user ids the handler
            resolves itself (for example to pseudonymise them as the model would). Ids reported by this
            library's models were already through the model's policy and are kept as they are.

    Examples:
        >>> from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
        >>> from langchain_core.messages import AIMessage
        >>> from openrouter_attribution import UsageLedger
        >>> ledger = UsageLedger(":memory:")
        >>> handler = UsageCallbackHandler(ledger)
        >>> model = GenericFakeChatModel(messages=iter([AIMessage("Hello!")]))
        >>> model.invoke("Hi", config={"callbacks": [handler], "metadata": {"user_id": "app_42"}}).content
        'Hello!'
        >>> [(r.user, r.outcome, r.cost) for r in ledger.records()]
        [('app_42', 'ok', None)]
        >>> ledger.close()
    """

    # Inline in async runs (exact time to first token): on the event-loop thread a durable ledger's
    # record() does not block, it commits in the background.
    run_inline = True

    def __init__(
        self,
        ledger: Any,
        *,
        user_id_key: str = "user_id",
        session_id_key: str = "session_id",
        policy: Any = None,
    ) -> None:
        self.ledger = ledger
        """Where the records go."""
        self.user_id_key = user_id_key
        """Run metadata key that holds the end-user id."""
        self.session_id_key = session_id_key
        """Run metadata key that holds the session id."""
        self.policy = policy
        """Identity policy for user ids the handler resolves itself (``None``: kept as they are)."""
        self._calls: CallTracker[UUID] = CallTracker()

    def __repr__(self) -> str:
        return f"UsageCallbackHandler(ledger={self.ledger!r}, in_flight={len(self._calls)})"

    # -- start -------------------------------------------------------------------------------------

    def _config_layers(self, metadata: Mapping[str, Any] | None) -> dict[str, Attribution | None]:
        """The layers ChatOpenRouter reads (:func:`~openrouter_attribution.langchain.config.call_layers`).

        Callbacks receive the run ``metadata`` only; ``configurable`` and the LangGraph runtime come from
        the run config of the invocation (ChatOpenRouter records it; runnables and graph tasks set it for
        their children). A model invoked directly elsewhere has none, so only ``metadata`` and
        ``user_context`` apply to it.
        """
        layers = call_layers(user_id_key=self.user_id_key, session_id_key=self.session_id_key, metadata=metadata)
        return {name: _as_strings(layer) for name, layer in layers.as_layers().items()}

    def _start(self, run_id: UUID, metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> None:
        attribution = resolve(**self._config_layers(metadata)).attribution
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name") or (metadata or {}).get("ls_model_name")
        self._calls.start(run_id, ObservedCall(attribution, model if isinstance(model, str) else None))

    @never_raises
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the start time, the requested model, the user and the session of a chat model run."""
        self._start(run_id, metadata, kwargs)

    @never_raises
    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Same as :meth:`on_chat_model_start`, for text-completion LLMs."""
        self._start(run_id, metadata, kwargs)

    @never_raises
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """The first token sets the time to first token and marks the call as streamed."""
        self._calls.token(run_id)

    # -- end ---------------------------------------------------------------------------------------

    def _finish(self, run_id: UUID, response: LLMResult | None, error: BaseException | None) -> None:
        call = self._calls.pop(run_id)
        if call is None:
            return
        if isinstance(error, BudgetExceededError):  # refused by a budget: nothing was sent, nothing to record
            call.finished = time.perf_counter()  # and no later stream may take this call's record id
            return
        observed = from_llm_result(response) if response is not None else EMPTY
        self.ledger.record(build_record(call, observed, error=error, framework="langchain", policy=self.policy))

    @never_raises
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Write the record of a finished call."""
        self._finish(run_id, response, None)

    @never_raises
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Write the record of a failed call: outcome is the error class name (``"abandoned"`` for a closed stream)."""
        partial = kwargs.get("response")
        self._finish(run_id, partial if isinstance(partial, LLMResult) else None, error)


def from_llm_result(response: LLMResult) -> Observed:
    """What a LangChain result reports: usage, cost, model, provider, generation id and sent attribution.

    Reads the first generation's message (``usage_metadata``, ``response_metadata``), then the
    OpenAI-style ``token_usage`` in ``response_metadata`` or ``llm_output`` for what is missing.
    """
    generation = response.generations[0][0] if response.generations and response.generations[0] else None
    message = getattr(generation, "message", None)
    meta: Mapping[str, Any] = (
        getattr(message, "response_metadata", None) or getattr(generation, "generation_info", None) or {}
    )
    llm_output: Mapping[str, Any] = response.llm_output or {}
    token_usage = meta.get("token_usage") or llm_output.get("token_usage") or llm_output.get("usage")
    wire = openai_usage(token_usage)
    usage = getattr(message, "usage_metadata", None) or {}
    cost = to_cost(meta.get("cost"))
    if cost is None:
        cost = wire["cost"]
    model = meta.get("model_name") or meta.get("model") or llm_output.get("model_name") or llm_output.get("model")
    generation_id = meta.get("generation_id") or meta.get("id") or llm_output.get("id")
    provider = meta.get("provider")
    return Observed(
        sent=sent_attribution(meta.get("attribution")),
        model_used=model if isinstance(model, str) else None,
        provider=provider if isinstance(provider, str) else None,
        prompt_tokens=_pick(to_int(usage.get("input_tokens")), wire["prompt_tokens"]),
        completion_tokens=_pick(to_int(usage.get("output_tokens")), wire["completion_tokens"]),
        cached_tokens=_pick(to_int(read(usage.get("input_token_details"), "cache_read")), wire["cached_tokens"]),
        reasoning_tokens=_pick(to_int(read(usage.get("output_token_details"), "reasoning")), wire["reasoning_tokens"]),
        cost=cost,
        generation_id=generation_id if isinstance(generation_id, str) else None,
    )


def _as_strings(layer: Attribution | None) -> Attribution | None:
    """A record holds strings: keep an int account id as ``"42"``."""
    if layer is None:
        return None
    user, session = layer.user, layer.session_id
    return Attribution(user=None if user is None else str(user), session_id=None if session is None else str(session))


def _pick(first: int | None, second: int | None) -> int | None:
    return first if first is not None else second
