"""One adapter per client under test, all speaking to the benchmark server the same way.

Every adapter sends the same request (one user message ``"hi"``, model ``openai/gpt-4o-mini``) and
checks the answer it gets, so a client that silently does something else fails loudly instead of
looking fast. Our models are built with ``require_user=False``: the others send no ``user`` either,
so all send the same body (the attribution cost is measured apart). Third-party imports happen
inside the adapters, so a missing package is reported as a skipped client with its reason; any
other problem is a failed measurement, which fails the run.

:func:`history` builds the conversations of the conversation-length measurement: human, AI with a
tool call, tool result, AI answer, repeating, in each client's own message types.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODEL = "openai/gpt-4o-mini"
API_KEY = "sk-or-bench-key"
PROMPT = "hi"
EXPECTED = "Hello! How can I help you today?"
REFERENCE = "openai"


class Skip(Exception):
    """The client cannot be measured here: a package it needs is not installed."""


class MeasurementError(Exception):
    """The client is installed but could not be measured (it failed, or answered something else)."""


def history(length: int) -> list[dict[str, Any]]:
    """A conversation of ``length`` messages in OpenAI chat format: human, AI with a tool call, tool
    result, AI answer, repeating (cut at ``length``)."""
    messages: list[dict[str, Any]] = []
    turn = 0
    while len(messages) < length:
        call_id = f"call_{turn}"
        arguments = json.dumps({"order_id": 1000 + turn})
        messages += [
            {"role": "user", "content": f"Where is my order {1000 + turn}? Please check it for me."},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "order_status", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": f"order {1000 + turn} shipped yesterday"},
            {"role": "assistant", "content": f"Your order {1000 + turn} shipped yesterday; it arrives tomorrow."},
        ]  # fmt: skip
        turn += 1
    return messages[:length]


def langchain_history(length: int) -> list[Any]:
    """:func:`history` as LangChain messages."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    out: list[Any] = []
    for message in history(length):
        if message["role"] == "user":
            out.append(HumanMessage(message["content"]))
        elif message["role"] == "tool":
            out.append(ToolMessage(message["content"], tool_call_id=message["tool_call_id"]))
        elif message.get("tool_calls"):
            call = message["tool_calls"][0]
            args = json.loads(call["function"]["arguments"])
            out.append(AIMessage("", tool_calls=[{"id": call["id"], "name": call["function"]["name"], "args": args}]))
        else:
            out.append(AIMessage(message["content"]))
    return out


def llama_index_history(length: int) -> list[Any]:
    """:func:`history` as LlamaIndex chat messages (tool calls as ``ToolCallBlock``)."""
    from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock

    out: list[Any] = []
    for message in history(length):
        if message["role"] == "user":
            out.append(ChatMessage(role=MessageRole.USER, content=message["content"]))
        elif message["role"] == "tool":
            out.append(ChatMessage(role=MessageRole.TOOL, content=message["content"],
                                   additional_kwargs={"tool_call_id": message["tool_call_id"]}))  # fmt: skip
        elif message.get("tool_calls"):
            call = message["tool_calls"][0]
            block = ToolCallBlock(tool_call_id=call["id"], tool_name=call["function"]["name"],
                                  tool_kwargs=json.loads(call["function"]["arguments"]))  # fmt: skip
            out.append(ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=""), block]))
        else:
            out.append(ChatMessage(role=MessageRole.ASSISTANT, content=message["content"]))
    return out


def _check_text(text: Any, client: str) -> None:
    if text != EXPECTED:
        raise RuntimeError(f"{client} returned {text!r}, expected {EXPECTED!r}")


class Adapter:
    """A client under test bound to one base URL. Sync and async models are built lazily."""

    name = ""
    label = ""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def new(self) -> Any:
        """Build a new model / client object with this adapter's connection settings."""
        raise NotImplementedError

    def call(self) -> None:
        """One non-streamed chat call."""
        raise NotImplementedError

    def stream(self) -> int:
        """One streamed chat call; returns the number of chunks that carried text."""
        raise NotImplementedError

    async def acall(self) -> None:
        """One async non-streamed chat call."""
        raise NotImplementedError

    def prepare_history(self, length: int) -> Any:
        """The conversation of :func:`history` in this client's message types."""
        raise NotImplementedError

    def call_history(self, messages: Any) -> None:
        """One non-streamed call sending ``messages`` (from :meth:`prepare_history`)."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop every reference this adapter holds (the benchmark then counts what stays open)."""
        self.__dict__.clear()


class OpenAISDK(Adapter):
    name = "openai"
    label = "openai SDK (reference)"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        import openai

        self._openai = openai
        self.client = self.new()
        self.aclient: Any = None
        self.messages = [{"role": "user", "content": PROMPT}]

    def new(self) -> Any:
        return self._openai.OpenAI(base_url=self.base_url, api_key=API_KEY)

    def call(self) -> None:
        answer = self.client.chat.completions.create(model=MODEL, messages=self.messages)
        _check_text(answer.choices[0].message.content, self.name)

    def stream(self) -> int:
        count = 0
        for chunk in self.client.chat.completions.create(model=MODEL, messages=self.messages, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
        return count

    async def acall(self) -> None:
        if self.aclient is None:
            self.aclient = self._openai.AsyncOpenAI(base_url=self.base_url, api_key=API_KEY)
        answer = await self.aclient.chat.completions.create(model=MODEL, messages=self.messages)
        _check_text(answer.choices[0].message.content, self.name)

    def prepare_history(self, length: int) -> Any:
        return history(length)

    def call_history(self, messages: Any) -> None:
        answer = self.client.chat.completions.create(model=MODEL, messages=messages)
        _check_text(answer.choices[0].message.content, self.name)


class BareHTTP(Adapter):
    """The floor: one HTTP client, ``json()`` of the answer, SSE lines parsed by hand."""

    name = "httpx"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        try:
            import httpx2 as httpx  # the HTTP stack the openai SDK itself runs on
        except ImportError:
            try:
                import httpx
            except ImportError as err:
                raise Skip("neither httpx2 nor httpx is installed") from err
        self._httpx = httpx
        self.label = f"bare {httpx.__name__} (floor)"
        self.url = base_url + "/chat/completions"
        # Same pool limits as the openai SDK, so concurrency 500 is not capped at httpx's default 100.
        self.limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.client = self.new()
        self.aclient: Any = None
        self.body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
        self.stream_body = {**self.body, "stream": True}

    def new(self) -> Any:
        return self._httpx.Client(headers=self.headers, limits=self.limits)

    def call(self) -> None:
        answer = self.client.post(self.url, json=self.body).json()
        _check_text(answer["choices"][0]["message"]["content"], self.name)

    def stream(self) -> int:
        count = 0
        with self.client.stream("POST", self.url, json=self.stream_body) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        count += 1
        return count

    async def acall(self) -> None:
        if self.aclient is None:
            self.aclient = self._httpx.AsyncClient(headers=self.headers, limits=self.limits)
        answer = (await self.aclient.post(self.url, json=self.body)).json()
        _check_text(answer["choices"][0]["message"]["content"], self.name)


class LangChainModel(Adapter):
    """Any LangChain chat model: ``invoke`` / ``stream`` / ``ainvoke``."""

    config: Any = None

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.model = self.new()

    def call(self) -> None:
        _check_text(self.model.invoke(PROMPT, config=self.config).content, self.name)

    def stream(self) -> int:
        return sum(1 for chunk in self.model.stream(PROMPT, config=self.config) if chunk.content)

    async def acall(self) -> None:
        _check_text((await self.model.ainvoke(PROMPT, config=self.config)).content, self.name)

    def prepare_history(self, length: int) -> Any:
        return langchain_history(length)

    def call_history(self, messages: Any) -> None:
        _check_text(self.model.invoke(messages, config=self.config).content, self.name)


class OursLangChain(LangChainModel):
    name = "ours-lc"
    label = "ours: langchain.ChatOpenRouter"

    def __init__(
        self, base_url: str, *, user: str | None = None, policy: bool = False, user_keys: bool = False
    ) -> None:
        try:
            from openrouter_attribution.langchain import ChatOpenRouter
        except ImportError as err:
            raise Skip(f"openrouter_attribution.langchain does not import: {err}") from err
        self._cls = ChatOpenRouter
        self._policy: Any = None
        self._user_keys: Any = None
        if user_keys:
            from openrouter_attribution import OpenRouterUserKeys

            # The first call creates the user's key (build() makes it); the measured calls find it cached.
            self._user_keys = OpenRouterUserKeys(
                secret="s" * 32, management_key="sk-or-bench-management", base_url=base_url
            )
        if policy:
            try:
                from openrouter_attribution.identity import UserIdPolicy
            except ImportError as err:
                raise Skip(f"openrouter_attribution.identity.UserIdPolicy does not import: {err}") from err
            self._policy = UserIdPolicy(prefix="app_", hash_key="k" * 32)
        if user is not None:
            self.config = {"configurable": {"user_id": user}}
        super().__init__(base_url)

    def new(self) -> Any:
        extra: dict[str, Any] = {"user_policy": self._policy} if self._policy is not None else {}
        if self._user_keys is not None:
            extra["user_keys"] = self._user_keys
        return self._cls(model=MODEL, base_url=self.base_url, api_key=API_KEY, require_user=False, **extra)


class LangChainOpenAI(LangChainModel):
    name = "lc-openai"
    label = "langchain_openai.ChatOpenAI"

    def __init__(self, base_url: str) -> None:
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as err:
            raise Skip(f"langchain-openai is not installed ({err})") from err
        self._cls = ChatOpenAI
        super().__init__(base_url)

    def new(self) -> Any:
        return self._cls(model=MODEL, base_url=self.base_url, api_key=API_KEY)


class LangChainOpenRouter(LangChainModel):
    name = "lc-openrouter"
    label = "langchain_openrouter.ChatOpenRouter"

    def __init__(self, base_url: str) -> None:
        try:
            from langchain_openrouter import ChatOpenRouter
        except ImportError as err:
            raise Skip(f"langchain-openrouter is not installed ({err})") from err
        self._cls = ChatOpenRouter
        super().__init__(base_url)

    def new(self) -> Any:
        # `base_url` maps to the openrouter SDK's `server_url`.
        return self._cls(model=MODEL, base_url=self.base_url, api_key=API_KEY)


class LlamaIndexModel(Adapter):
    """Any LlamaIndex LLM: ``chat`` / ``stream_chat`` / ``achat``."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        from llama_index.core.llms import ChatMessage

        self.messages = [ChatMessage(role="user", content=PROMPT)]
        self.model = self.new()

    def call(self) -> None:
        _check_text(self.model.chat(self.messages).message.content, self.name)

    def stream(self) -> int:
        return sum(1 for response in self.model.stream_chat(self.messages) if response.delta)

    async def acall(self) -> None:
        _check_text((await self.model.achat(self.messages)).message.content, self.name)

    def prepare_history(self, length: int) -> Any:
        return llama_index_history(length)

    def call_history(self, messages: Any) -> None:
        _check_text(self.model.chat(messages).message.content, self.name)


class OursLlamaIndex(LlamaIndexModel):
    name = "ours-li"
    label = "ours: llama_index.OpenRouter"

    def __init__(self, base_url: str) -> None:
        try:
            from openrouter_attribution.llama_index import OpenRouter
        except ImportError as err:
            raise Skip(f"openrouter_attribution.llama_index does not import: {err}") from err
        self._cls = OpenRouter
        super().__init__(base_url)

    def new(self) -> Any:
        return self._cls(model=MODEL, base_url=self.base_url, api_key=API_KEY, require_user=False)


class LlamaIndexOpenRouter(LlamaIndexModel):
    name = "li-openrouter"
    label = "llama_index.llms.openrouter.OpenRouter"

    def __init__(self, base_url: str) -> None:
        try:
            from llama_index.llms.openrouter import OpenRouter
        except ImportError as err:
            raise Skip(f"llama-index-llms-openrouter is not installed ({err})") from err
        self._cls = OpenRouter
        super().__init__(base_url)

    def new(self) -> Any:
        return self._cls(model=MODEL, api_base=self.base_url, api_key=API_KEY)


@dataclass(frozen=True)
class ClientSpec:
    name: str
    label: str
    factory: Callable[[str], Adapter]


CLIENTS: tuple[ClientSpec, ...] = (
    ClientSpec(OpenAISDK.name, OpenAISDK.label, OpenAISDK),
    ClientSpec(BareHTTP.name, "bare httpx (floor)", BareHTTP),
    ClientSpec(OursLangChain.name, OursLangChain.label, OursLangChain),
    ClientSpec(OursLlamaIndex.name, OursLlamaIndex.label, OursLlamaIndex),
    ClientSpec(LangChainOpenAI.name, LangChainOpenAI.label, LangChainOpenAI),
    ClientSpec(LangChainOpenRouter.name, LangChainOpenRouter.label, LangChainOpenRouter),
    ClientSpec(LlamaIndexOpenRouter.name, LlamaIndexOpenRouter.label, LlamaIndexOpenRouter),
)

# The attribution-cost variants of our LangChain model (all with a per-call user except the baseline).
ATTRIBUTION_VARIANTS: tuple[ClientSpec, ...] = (
    ClientSpec("no-user", "ChatOpenRouter, no user", lambda url: OursLangChain(url)),
    ClientSpec("config-user", "+ user from config", lambda url: OursLangChain(url, user="42")),
    ClientSpec("config-user+policy", "+ user from config + UserIdPolicy",
               lambda url: OursLangChain(url, user="42", policy=True)),
    ClientSpec("config-user+keys", "+ user from config + the user's own key (user_keys=, warm)",
               lambda url: OursLangChain(url, user="42", user_keys=True)),
)  # fmt: skip


def by_name(name: str) -> ClientSpec:
    for spec in (*CLIENTS, *ATTRIBUTION_VARIANTS):
        if spec.name == name:
            return spec
    raise KeyError(name)


# The clients of the conversation-length measurement (others are reported there as not measured).
CONVERSATION_CLIENTS = (REFERENCE, "ours-lc", "ours-li", "lc-openai")
CONVERSATION_LENGTHS = (1, 20, 100, 400)


def build(spec: ClientSpec, base_url: str) -> Adapter:
    """Build an adapter and make one call of each kind, so a broken client fails here, clearly.

    Raises:
        Skip: a package the client needs is not installed.
        MeasurementError: the client is installed but fails or answers something else.
    """
    try:
        adapter = spec.factory(base_url)
        adapter.call()
        chunks = adapter.stream()
    except Skip:
        raise
    except Exception as err:
        raise MeasurementError(f"{type(err).__name__}: {err}".splitlines()[0][:200]) from err
    if chunks < 1:
        raise MeasurementError(f"its stream yielded {chunks} text chunks")
    return adapter
