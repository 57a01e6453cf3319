"""``ChatOpenRouter``: a LangChain chat model that attributes every call to its end-user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun, Callbacks
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from pydantic import ConfigDict

from openrouter_attribution.client import Invoker, Prepared
from openrouter_attribution.endpoints import CHAT, RESPONSES, Endpoint
from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.langchain.config import (
    RUN_CONFIG,
    CallLayers,
    call_layers,
    current_run_config,
    searched_places,
)
from openrouter_attribution.langchain.messages import from_completion, from_delta, last_chunk, to_openai_messages
from openrouter_attribution.langchain.runs import run_trace
from openrouter_attribution.langchain.structured import bind_tool_schemas, structured_output_runnable
from openrouter_attribution.options import OpenRouterOptions
from openrouter_attribution.wire.responses import check_responses_fields, check_stateless

__all__ = ["ChatOpenRouter"]


class ChatOpenRouter(BaseChatModel, OpenRouterOptions):  # type: ignore[misc]
    """OpenRouter chat model for LangChain, attributing every call to the end-user it serves.

    The end-user of each call is resolved per invocation, first match wins:
    ``user=`` passed to the call (or ``.bind(user=...)``) >
    LangGraph Platform's ``config["configurable"]["langgraph_auth_user_id"]`` (the
    authenticated user; a client cannot choose it) >
    ``config["configurable"]["user_id"]`` > ``config["metadata"]["user_id"]``
    (or ``["langfuse_user_id"]``) > the LangGraph runtime context's ``user_id``
    (``graph.invoke(..., context=...)``: a dataclass, pydantic model or mapping) >
    :func:`~openrouter_attribution.user_context` > the model's own ``user`` field.
    ``session_id`` resolves the same way (without the Platform layer), with
    LangGraph's ``configurable["thread_id"]`` as the last resort. The key names
    are settable with ``user_id_key`` and ``session_id_key``.

    Examples:
        >>> from openrouter_attribution.langchain import ChatOpenRouter
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server:
        ...     llm = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=server.base_url,
        ...                          api_key=server.api_key)
        ...     answer = llm.invoke("Hello", config={"configurable": {"user_id": "app_42"}})
        ...     server.chat_requests[-1].body["user"]
        'app_42'
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    user_id_key: str = "user_id"
    """Key looked up in ``config["configurable"]``, ``config["metadata"]`` and the LangGraph runtime
    context (attribute or key) for the end-user."""
    session_id_key: str = "session_id"
    """Key looked up in ``config["configurable"]``, ``config["metadata"]`` and the LangGraph runtime
    context (attribute or key) for the session."""
    streaming: bool = False
    """Whether ``invoke`` streams the answer (callbacks see each token; the result is the same message)."""
    use_responses_api: bool = False
    """Send ``POST /responses`` (OpenRouter's Responses API) instead of chat completions, with the same
    attribution (``user`` and ``safety_identifier`` both the id as sent), ledger and budget. Stateless:
    ``store`` is always false and ``previous_response_id`` is refused; reasoning items an answer returns
    are kept in ``additional_kwargs["reasoning_items"]`` and sent back unchanged on the next turn."""

    def __init__(self, **kwargs: Any) -> None:
        _refuse_stateful(kwargs)
        self._check_keywords(kwargs)  # a misspelled option raises instead of vanishing
        super().__init__(**kwargs)
        # Built here, not in a validator, so configuration errors surface as ConfigurationError.
        self._invoker = self._build_invoker("langchain")

    @property
    def _llm_type(self) -> str:
        return "openrouter"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["openrouter_attribution", "langchain", "chat_model"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "OPENROUTER_API_KEY"}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params = {"model": self.model, "base_url": self.base_url, **self._options_identifying()}
        if self.use_responses_api:
            params["use_responses_api"] = True
        return params

    def _endpoint(self) -> Endpoint:
        if self.output_version == "responses/v1":
            raise ConfigurationError(
                "output_version='responses/v1' (ChatOpenAI's content-block format) is not supported; set "
                "use_responses_api=True instead: the answer's text stays in content, its reasoning items in "
                "additional_kwargs['reasoning_items']."
            )
        if not self.use_responses_api:
            return CHAT
        # Refused at construction, not at the first call: options the Responses API does not take.
        check_responses_fields(self._body_params(), where="model field")
        check_stateless(self.extra_body or {}, where="extra_body")
        return RESPONSES

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="openrouter", ls_model_name=kwargs.get("model") or self.model, ls_model_type="chat"
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or ([self.stop] if isinstance(self.stop, str) else self.stop)
        return params

    # -- public entry points: remember the run config of the invocation ---------------------------
    # `generate` / `agenerate` (which invoke, ainvoke and batch go through) and the streams also put the
    # call's ids through the identity policy first (`sent_call_kwargs`): LangChain hands the call's
    # keywords to callbacks (`invocation_params`, `options`) and caches before the model runs, and only
    # the id as sent may reach them.

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:  # fmt: skip
        config = ensure_config(config)
        token = RUN_CONFIG.set(config)
        try:
            return super().invoke(input, config, stop=stop, **kwargs)
        finally:
            RUN_CONFIG.reset(token)

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:  # fmt: skip
        config = ensure_config(config)
        token = RUN_CONFIG.set(config)
        try:
            return await super().ainvoke(input, config, stop=stop, **kwargs)
        finally:
            RUN_CONFIG.reset(token)

    def generate(
        self, messages: list[list[BaseMessage]], stop: list[str] | None = None, callbacks: Callbacks = None,
        **kwargs: Any,
    ) -> LLMResult:  # fmt: skip
        return super().generate(messages, stop, callbacks, **self._invoker.sent_call_kwargs(kwargs))

    async def agenerate(
        self, messages: list[list[BaseMessage]], stop: list[str] | None = None, callbacks: Callbacks = None,
        **kwargs: Any,
    ) -> LLMResult:  # fmt: skip
        return await super().agenerate(messages, stop, callbacks, **self._invoker.sent_call_kwargs(kwargs))

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:  # fmt: skip
        config = ensure_config(config)
        kwargs = self._invoker.sent_call_kwargs(kwargs)
        inner = super().stream(input, config, stop=stop, **kwargs)
        while True:
            token = RUN_CONFIG.set(config)
            try:
                chunk = next(inner)
            except StopIteration:
                return
            finally:
                RUN_CONFIG.reset(token)
            yield chunk

    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:  # fmt: skip
        config = ensure_config(config)
        kwargs = self._invoker.sent_call_kwargs(kwargs)
        inner = super().astream(input, config, stop=stop, **kwargs)
        while True:
            token = RUN_CONFIG.set(config)
            try:
                chunk = await anext(inner)
            except StopAsyncIteration:
                return
            finally:
                RUN_CONFIG.reset(token)
            yield chunk

    # -- attribution -------------------------------------------------------------------------------

    def _searched(self) -> Mapping[str, tuple[str, ...]]:
        return searched_places(self.user_id_key)

    def _config_layers(
        self, run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None
    ) -> CallLayers:
        config = current_run_config()
        trace = None
        if self.trace and run_manager is not None:
            trace = run_trace(run_manager, (config or {}).get("run_name") or self.get_name(), self.trace)
        return call_layers(user_id_key=self.user_id_key, session_id_key=self.session_id_key, config=config, trace=trace)

    def _prepare(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        *,
        stream: bool,
    ) -> Prepared:
        invoker: Invoker = self._invoker
        kwargs.pop("ls_structured_output_format", None)
        if stop is not None:
            kwargs["stop"] = stop
        explicit = invoker.split_call_kwargs(kwargs, where="call or bind() keyword")
        layers = self._config_layers(run_manager)
        attribution = invoker.attribute(explicit=explicit, searched=self._searched(), **layers.as_layers())
        neutral = to_openai_messages(messages, reasoning_items=self.use_responses_api)
        return invoker.prepare(neutral, attribution, overrides=kwargs, stream=stream)

    # -- calls -------------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prepared = self._prepare(messages, stop, kwargs, run_manager, stream=False)
        completion = self._invoker.complete(prepared)
        return ChatResult(generations=[ChatGeneration(message=from_completion(completion, prepared.attribution))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prepared = self._prepare(messages, stop, kwargs, run_manager, stream=False)
        completion = await self._invoker.acomplete(prepared)
        return ChatResult(generations=[ChatGeneration(message=from_completion(completion, prepared.attribution))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        prepared = self._prepare(messages, stop, kwargs, run_manager, stream=True)
        meta = self._invoker.stream_meta()
        for delta, _finish in self._invoker.stream(prepared, meta):
            chunk = ChatGenerationChunk(message=from_delta(delta))
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=last_chunk(meta, prepared.attribution))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        prepared = self._prepare(messages, stop, kwargs, run_manager, stream=True)
        meta = self._invoker.stream_meta()
        async for delta, _finish in self._invoker.astream(prepared, meta):
            chunk = ChatGenerationChunk(message=from_delta(delta))
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=last_chunk(meta, prepared.attribution))

    # -- tools and structured output -----------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | Mapping[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI tool dicts).

        Args:
            tools: The tools the model may call.
            tool_choice: ``"auto"``, ``"none"``, ``"any"`` / ``"required"`` (must call one),
                a tool name (must call that one), ``True`` (must call the only tool), or an
                OpenAI ``tool_choice`` dict.
            parallel_tool_calls: Allow several tool calls in one answer.
            strict: Ask for strict JSON-schema adherence of the arguments.
            **kwargs: Further request parameters to bind.
        """
        return self.bind(**bind_tool_schemas(tools, tool_choice, parallel_tool_calls, strict), **kwargs)

    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Return answers parsed into ``schema`` (a pydantic class, TypedDict or JSON schema).

        Args:
            schema: The output schema (may be ``None`` only with ``method="json_mode"``).
            method: ``"function_calling"`` (a forced tool call; the widest model support),
                ``"json_schema"`` (OpenRouter structured outputs, ``response_format``) or
                ``"json_mode"`` (``response_format: json_object``; describe the format in the prompt).
            include_raw: Return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``
                instead of raising on a parsing error.
            strict: Strict schema adherence for ``function_calling`` / ``json_schema``.
            **kwargs: Call parameters bound to the model, e.g. ``user=...`` or ``temperature=...``.
        """
        return structured_output_runnable(
            self, schema, method=method, include_raw=include_raw, strict=strict, bind_kwargs=kwargs
        )


def _refuse_stateful(kwargs: Mapping[str, Any]) -> None:
    """Refuse, at construction, the stateful Responses options of ``ChatOpenAI`` (which this model would
    otherwise ignore): OpenRouter's Responses API is stateless.

    Raises:
        ConfigurationError: ``previous_response_id``, ``use_previous_response_id=True`` or a ``store`` other
            than ``False``, given directly or in ``model_kwargs``.
    """
    model_kwargs = kwargs.get("model_kwargs")
    for where, given in (("ChatOpenRouter(...) argument", kwargs), ("model_kwargs", model_kwargs or {})):
        check_stateless(given, where=where)
