"""The one place where ``openai`` SDK clients are built, shared and called.

Clients are expensive to build (TLS set-up), so models with equal connection
settings share them: one sync client per settings, one async client per
settings *and event loop* (an async client must not outlive or cross its loop,
so ``asyncio.run`` can be called many times in one process). The SDK does the
HTTP, the retries (honouring ``Retry-After``) and the SSE decoding; responses
are requested as plain JSON (``cast_to=object``) so no pydantic model is built
for them, and streams are drained after ``[DONE]`` so their connection goes
back to the pool instead of being closed. A stream that reached ``[DONE]``
ends with :data:`STREAM_END`, so the caller can tell a finished stream from
one cut short; a 200 answer to a streamed request that is not an event stream
(an error object, an empty body) raises here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openrouter_attribution.errors import InvalidResponseError, OpenRouterError
from openrouter_attribution.wire.errors import from_sdk_error, parse_error_object

if TYPE_CHECKING:
    import openai

__all__ = [
    "CHAT_PATH",
    "EMBEDDINGS_PATH",
    "RERANK_PATH",
    "RESPONSES_PATH",
    "STREAM_END",
    "ConnectionSettings",
    "async_client",
    "get_json",
    "aget_json",
    "post_json",
    "apost_json",
    "post_stream",
    "apost_stream",
]

CHAT_PATH = "/chat/completions"
"""Path of OpenRouter's chat completions, relative to the base URL."""
EMBEDDINGS_PATH = "/embeddings"
"""Path of OpenRouter's embeddings, relative to the base URL."""
RERANK_PATH = "/rerank"
"""Path of OpenRouter's rerank, relative to the base URL."""
RESPONSES_PATH = "/responses"
"""Path of OpenRouter's Responses API, relative to the base URL."""
_DRAIN_SECONDS = 0.1

STREAM_END: Any = object()
"""Yielded by :func:`post_stream` / :func:`apost_stream` after the stream's ``data: [DONE]``."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Everything that identifies an HTTP client; equal settings share one client."""

    api_key: str = field(repr=False)
    base_url: str
    timeout: float | None
    max_retries: int
    headers: tuple[tuple[str, str], ...] = ()


_sync_clients: dict[ConnectionSettings, openai.OpenAI] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ConnectionSettings, Any]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "api_key": settings.api_key,
        "base_url": settings.base_url,
        "max_retries": settings.max_retries,
        "default_headers": dict(settings.headers),
    }
    if settings.timeout is not None:
        kwargs["timeout"] = settings.timeout
    return kwargs


def sync_client(settings: ConnectionSettings) -> openai.OpenAI:
    """The shared sync client for these settings (built on first use)."""
    client = _sync_clients.get(settings)
    if client is None:
        import openai

        with _lock:
            client = _sync_clients.get(settings)
            if client is None:
                client = openai.OpenAI(**_client_kwargs(settings))
                _sync_clients[settings] = client
    return client


def async_client(settings: ConnectionSettings) -> openai.AsyncOpenAI:
    """The shared async client for these settings on the running event loop.

    Async clients run on the SDK's aiohttp transport (``openai[aiohttp]``), whose connection
    pool sustains several times the throughput of the default one at 50+ calls in flight.
    They are closed when their loop shuts down (``asyncio.run`` finalises async generators).
    """
    loop = asyncio.get_running_loop()
    per_loop = _async_clients.get(loop)
    if per_loop is None:
        with _lock:
            per_loop = _async_clients.setdefault(loop, {})
        _close_at_loop_shutdown(loop, per_loop)
    client = per_loop.get(settings)
    if client is None:
        import openai

        client = openai.AsyncOpenAI(**_client_kwargs(settings), http_client=openai.DefaultAioHttpClient())
        per_loop[settings] = client
    return client


async def _closer(clients: dict[Any, Any]) -> AsyncGenerator[None, None]:
    """Suspended until the loop finalises its async generators, then closes the loop's clients."""
    try:
        yield
    finally:
        for client in list(clients.values()):
            if not isinstance(client, AsyncGenerator):
                with contextlib.suppress(Exception):
                    await client.close()
        clients.clear()


def _close_at_loop_shutdown(loop: asyncio.AbstractEventLoop, clients: dict[Any, Any]) -> None:
    keeper = _closer(clients)
    clients[_KEEPER] = keeper  # a strong reference: the loop only keeps a weak one
    loop.create_task(_start(keeper))


async def _start(keeper: AsyncGenerator[None, None]) -> None:
    await keeper.__anext__()


_KEEPER = object()


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise ``openai`` SDK and JSON errors as :mod:`openrouter_attribution.errors` classes."""
    try:
        yield
    except OpenRouterError:
        raise
    except json.JSONDecodeError as err:
        if not err.doc.strip():
            raise InvalidResponseError("OpenRouter answered with HTTP 200 and an empty body.") from err
        raise InvalidResponseError("OpenRouter sent data that is not valid JSON.") from err
    except Exception as err:
        mapped = from_sdk_error(err)
        if mapped is None:
            raise
        raise mapped from err


def _auth(key: str | None) -> Any:
    """Request options that send ``key`` instead of the client's own (a per-user key); none for ``None``."""
    return {} if key is None else {"headers": {"Authorization": f"Bearer {key}"}}


def post_json(
    settings: ConnectionSettings, body: dict[str, Any], *, path: str = CHAT_PATH, key: str | None = None
) -> Any:
    """POST a non-streamed request (a chat completion unless ``path`` says otherwise); returns the decoded JSON.

    ``key`` replaces the settings' API key for this request (an end-user's own key).
    """
    with translated_errors():
        return sync_client(settings).post(path, cast_to=object, body=body, options=_auth(key))


async def apost_json(
    settings: ConnectionSettings, body: dict[str, Any], *, path: str = CHAT_PATH, key: str | None = None
) -> Any:
    """Async :func:`post_json`."""
    with translated_errors():
        return await async_client(settings).post(path, cast_to=object, body=body, options=_auth(key))


def get_json(settings: ConnectionSettings, path: str, params: dict[str, str] | None = None) -> Any:
    """GET ``path`` (relative to the base URL, e.g. ``/models``); returns the decoded JSON body."""
    with translated_errors():
        return sync_client(settings).get(path, cast_to=object, options={"params": params or {}})


async def aget_json(settings: ConnectionSettings, path: str, params: dict[str, str] | None = None) -> Any:
    """Async :func:`get_json`."""
    with translated_errors():
        return await async_client(settings).get(path, cast_to=object, options={"params": params or {}})


_stream_classes: tuple[type, type] | None = None


def _streams() -> tuple[type, type]:
    """SDK stream classes that yield each event's JSON and drain the body after ``[DONE]``."""
    global _stream_classes
    if _stream_classes is not None:
        return _stream_classes
    import openai

    class DrainingStream(openai.Stream[object]):
        def __stream__(self) -> Iterator[Any]:
            response = self.response
            try:
                if _is_json(response):
                    _raise_for_json_body(response.read())
                events = self._iter_events()
                for sse in events:
                    if sse.data.startswith("[DONE]"):
                        # Read the end of the chunked body so the connection goes back to the pool.
                        for _ in events:
                            pass
                        break
                    yield json.loads(sse.data)
                else:
                    return  # the body ended without [DONE]: no STREAM_END
            finally:
                response.close()
            yield STREAM_END

    class AsyncDrainingStream(openai.AsyncStream[object]):
        async def __stream__(self) -> AsyncIterator[Any]:
            response = self.response
            try:
                if _is_json(response):
                    _raise_for_json_body(await response.aread())
                events = self._iter_events()
                async for sse in events:
                    if sse.data.startswith("[DONE]"):
                        await _drain(events)
                        break
                    yield json.loads(sse.data)
                else:
                    return
            finally:
                await response.aclose()
            yield STREAM_END

    _stream_classes = (DrainingStream, AsyncDrainingStream)
    return _stream_classes


def _is_json(response: Any) -> bool:
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type.endswith("json")


def _raise_for_json_body(data: bytes) -> None:
    """A streamed request answered 200 with a JSON body instead of events: raise what the body says.

    OpenRouter reports a failure that happens after the request was accepted with HTTP 200 and an
    ``error`` object (https://openrouter.ai/docs/api-reference/errors).
    """
    if not data.strip():
        raise InvalidResponseError("OpenRouter answered the streamed request with HTTP 200 and an empty body.")
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        raise parse_error_object(body["error"], generation_id=body.get("id"))
    raise InvalidResponseError("OpenRouter answered the streamed request with a JSON body instead of an event stream.")


async def _drain(events: AsyncIterator[Any]) -> None:
    """Read what is left of a finished stream (bounded in time) so its connection can be reused."""
    import anyio

    with contextlib.suppress(Exception), anyio.move_on_after(_DRAIN_SECONDS):
        async for _ in events:
            pass


def post_stream(
    settings: ConnectionSettings, body: dict[str, Any], *, path: str = CHAT_PATH, key: str | None = None
) -> Iterator[Any]:
    """POST a streamed request (a chat completion unless ``path`` says otherwise); yields each event's JSON
    (``key`` as for :func:`post_json`)."""
    with translated_errors():
        client = sync_client(settings)
        stream: Any = client.post(
            path, cast_to=object, body=body, stream=True, stream_cls=_streams()[0], options=_auth(key)
        )
        try:
            yield from stream
        finally:
            stream.close()


async def apost_stream(
    settings: ConnectionSettings, body: dict[str, Any], *, path: str = CHAT_PATH, key: str | None = None
) -> AsyncIterator[Any]:
    """Async :func:`post_stream`."""
    with translated_errors():
        stream: Any = await async_client(settings).post(
            path, cast_to=object, body=body, stream=True, stream_cls=_streams()[1], options=_auth(key)
        )
        try:
            async for event in stream:
                yield event
        finally:
            await stream.close()
