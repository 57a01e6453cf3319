"""``OpenRouter``: a LlamaIndex function-calling LLM that attributes every call to its end-user."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import ConfigDict, Field

from openrouter_attribution.client import Invoker, Prepared, StreamMeta
from openrouter_attribution.errors import ConfigurationError
from openrouter_attribution.llama_index.context import install_stream_binder, tag_layer
from openrouter_attribution.llama_index.fields import LlamaIndexFields
from openrouter_attribution.llama_index.messages import (
    StreamAccumulator,
    from_completion,
    to_openai_messages,
    tool_selections,
)
from openrouter_attribution.llama_index.models import model_limits
from openrouter_attribution.options import ClientOptions, OpenRouterOptions
from openrouter_attribution.wire.tools import build_tool_choice

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["OpenRouter"]


class OpenRouter(FunctionCallingLLM, LlamaIndexFields, OpenRouterOptions):  # type: ignore[misc]
    """OpenRouter chat models for LlamaIndex, attributing every call to the end-user it serves.

    The end-user of each call is resolved per call, first match wins: ``user=`` passed to the
    call (``llm.chat(messages, user=...)``, also ``session_id=``, ``trace=``,
    ``openrouter_metadata=``) > :func:`~openrouter_attribution.user_context` > LlamaIndex's
    ``instrument_tags({"user_id": ..., "session_id": ...})`` (key names set by ``user_id_tag`` and
    ``session_id_tag``) > the model's own ``user`` / ``session_id`` fields. Both context sources
    are captured when an agent or workflow run starts (``agent.run(...)``) and reach every LLM
    call of that run, its tools and hand-offs included.

    Responses carry token usage, cost, provider, model, generation id and the attribution that
    was sent in ``ChatResponse.additional_kwargs`` (and the response body in ``raw``).

    Examples:
        >>> from llama_index.core.llms import ChatMessage
        >>> from openrouter_attribution import user_context
        >>> from openrouter_attribution.llama_index import OpenRouter
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server:
        ...     llm = OpenRouter(model="openai/gpt-4o-mini", api_base=server.base_url, api_key=server.api_key)
        ...     with user_context("app_42", session_id="chat-7"):
        ...         response = llm.chat([ChatMessage(role="user", content="Hello")])
        ...     (server.chat_requests[-1].body["user"], response.additional_kwargs["attribution"]["session_id"])
        ('app_42', 'chat-7')
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    context_window: int | None = Field(default=None, gt=0)
    """Context window reported in ``metadata``; ``None``: known value for the model, else a default."""
    num_output: int | None = Field(default=None, gt=0)
    """Output tokens reserved in ``metadata`` (never sent); ``None``: ``max_tokens``, the known value, or a default."""

    def __init__(self, **data: Any) -> None:
        # Checked here rather than in pydantic validators, which would wrap ConfigurationError
        # in a ValidationError: a bad configuration raises our own error, at construction.
        if "api_base" in data:
            api_base = data.pop("api_base")
            if data.get("base_url", api_base) != api_base:
                raise ConfigurationError("Pass either api_base or base_url (they are the same setting), not both.")
            data["base_url"] = api_base
        self._check_keywords(data)  # a misspelled option raises instead of vanishing
        super().__init__(**data)
        self._invoker = self._build_invoker("llama_index")
        install_stream_binder()

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # LlamaIndex's BaseComponent re-runs __init__ on unpickling, which would put the (already sent)
        # default ids through the policy again; the common restore reads the API key from the
        # environment and rebuilds the invoker instead.
        ClientOptions.__setstate__(self, state)
        install_stream_binder()

    @classmethod
    def class_name(cls) -> str:
        return "openrouter_attribution.OpenRouter"

    @property
    def metadata(self) -> LLMMetadata:
        """LLM metadata: context window and output size for the model (defaults when unknown)."""
        window, output = model_limits(self.model)
        return LLMMetadata(
            context_window=self.context_window or window,
            num_output=self.num_output or self.max_tokens or output,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model,
        )

    # -- the one preparation step of every call ------------------------------------------------------

    def _prepare(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], *, stream: bool) -> Prepared:
        """Resolve the attribution and build the request body (before any I/O)."""
        invoker: Invoker = self._invoker
        explicit = invoker.split_call_kwargs(kwargs, where="LLM call keyword")
        attribution = invoker.attribute(
            explicit=explicit,
            ambient=tag_layer(self.user_id_tag, self.session_id_tag),
            searched={
                "explicit": ("the call's user= argument",),
                "ambient": (f"instrument_tags({{{self.user_id_tag!r}: ...}})",),
            },
        )
        return invoker.prepare(to_openai_messages(messages), attribution, overrides=kwargs, stream=stream)

    # -- chat: private bodies, shared by the public chat and completion methods ----------------------

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prepared = self._prepare(messages, kwargs, stream=False)
        return from_completion(self._invoker.complete(prepared), prepared.attribution)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prepared = self._prepare(messages, kwargs, stream=False)
        return from_completion(await self._invoker.acomplete(prepared), prepared.attribution)

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # Prepared now, not on first iteration: the attribution is the caller's, wherever the
        # generator is consumed, and a missing user raises before anything is returned.
        prepared = self._prepare(messages, kwargs, stream=True)

        def gen() -> ChatResponseGen:
            meta, acc = StreamMeta(), StreamAccumulator()
            for delta, _finish in self._invoker.stream(prepared, meta):
                response = acc.update(delta)
                if response is not None:
                    yield response
            yield acc.final(meta, prepared.attribution)

        return gen()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        prepared = self._prepare(messages, kwargs, stream=True)

        async def gen() -> ChatResponseAsyncGen:
            meta, acc = StreamMeta(), StreamAccumulator()
            async for delta, _finish in self._invoker.astream(prepared, meta):
                response = acc.update(delta)
                if response is not None:
                    yield response
            yield acc.final(meta, prepared.attribution)

        return gen()

    # -- public LLM interface ------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat. Keyword arguments: ``user``, ``session_id``, ``trace``, ``openrouter_metadata`` and
        any OpenRouter request parameter (``temperature``, ``max_tokens``, ``response_format``, ...)."""
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Streamed :meth:`chat`; the last response carries usage and metadata."""
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        return await self._astream_chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt (sent as one user message). Same keyword arguments as :meth:`chat`."""
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Async :meth:`complete`."""
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Streamed :meth:`complete`."""
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # -- tool calling ----------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments for a call with tools.

        ``tool_choice`` (``"auto"``, ``"none"``, ``"required"``, a tool name or an OpenAI dict) is
        sent only when given or when ``tool_required`` is set. ``parallel_tool_calls`` is not sent:
        with ``allow_parallel_tool_calls=False`` only the first tool call of the answer is kept,
        as in LlamaIndex's other integrations.
        """
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        chat_kwargs: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            chat_kwargs["tools"] = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
            choice = build_tool_choice(tool_choice, required=tool_required)
            if choice is not None:
                chat_kwargs["tool_choice"] = choice
        return chat_kwargs

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:
            calls = [block for block in response.message.blocks if isinstance(block, ToolCallBlock)]
            for extra in calls[1:]:
                response.message.blocks.remove(extra)
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The tool calls of a response.

        Raises:
            ValueError: the response has no tool call and ``error_on_no_tool_call`` is true.
        """
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but the model answered without calling a tool.")
        return selections


def _ids_as_sent_first(method: Callable[..., Any]) -> Callable[..., Any]:
    """Put the call's ``user`` / ``session_id`` / ``openrouter_metadata`` (also inside ``llm_kwargs``)
    through the identity policy before LlamaIndex sees them: its spans (bound arguments and results),
    ``LLMChatStartEvent`` / ``LLMCompletionStartEvent`` (``additional_kwargs``) and callback payloads
    all carry the call's keywords, and only the id as sent may reach them."""

    def sent(self: OpenRouter, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = self._invoker.sent_call_kwargs(kwargs)
        if isinstance(kwargs.get("llm_kwargs"), dict):
            kwargs = {**kwargs, "llm_kwargs": self._invoker.sent_call_kwargs(kwargs["llm_kwargs"])}
        return kwargs

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_call(self: OpenRouter, *args: Any, **kwargs: Any) -> Any:
            return await method(self, *args, **sent(self, kwargs))

        return async_call

    @functools.wraps(method)
    def call(self: OpenRouter, *args: Any, **kwargs: Any) -> Any:
        return method(self, *args, **sent(self, kwargs))

    return call


# Wrapped after the class is built: LlamaIndex's DispatcherSpanMixin wraps the methods defined in the
# class body in a span, and this step must come before the span records the call's arguments. These
# are the LLM's methods that take the call's keywords (the others build them from a prompt).
for _name in ("chat", "achat", "stream_chat", "astream_chat", "complete", "acomplete", "stream_complete",
              "astream_complete", "chat_with_tools", "achat_with_tools", "stream_chat_with_tools",
              "astream_chat_with_tools", "predict_and_call", "apredict_and_call", "structured_predict",
              "astructured_predict", "stream_structured_predict", "astream_structured_predict"):  # fmt: skip
    setattr(OpenRouter, _name, _ids_as_sent_first(getattr(OpenRouter, _name)))
