"""The web entry point: bind each request to its end-user, and keep that user on work handed to threads.

The end-user is known where a request comes in. :class:`UserContextMiddleware` (ASGI: FastAPI,
Starlette, Quart, Django's ASGI handler, ...) and :class:`WSGIUserContextMiddleware` (WSGI: Flask,
Django, Falcon, ...) ask a function of yours who the request is for and run the request inside
:func:`~openrouter_attribution.user_context`, so every model call it makes is attributed to that
user: in the handler, while a streamed response body is produced (also a WSGI body iterated by the
server after the application returned), and in work started from it (asyncio tasks, Starlette and
FastAPI ``BackgroundTasks``, the server's thread pool for sync handlers). Work handed to a plain
thread or ``ThreadPoolExecutor`` does not inherit context variables: use
:func:`~openrouter_attribution.propagate` or :class:`PropagatingExecutor` there.

The ``identify`` function receives the ASGI ``scope`` or the WSGI ``environ`` and returns one of:

* ``None``: no user known for this request (the request runs as it would without the middleware);
* the user id, a ``str``;
* ``(user, session_id)``, either of them ``None``;
* an :class:`~openrouter_attribution.Attribution` (user, session, trace, metadata).

Take the user from what your authentication established (a verified session cookie or token, or
``scope["user"]`` set by an authentication middleware that runs before this one), never from a
header or field the client can set freely. Return an internal id or a pseudonym, not an email
address (see :class:`~openrouter_attribution.UserIdPolicy`).

No web framework is imported here: the middleware speak plain ASGI 3 and WSGI (PEP 3333).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from openrouter_attribution.attribution import Attribution, propagate, user_context
from openrouter_attribution.errors import AttributionError, ConfigurationError
from openrouter_attribution.identity import validate_user_id
from openrouter_attribution.keywords import checked_keywords

__all__ = [
    "PropagatingExecutor",
    "UserContextMiddleware",
    "WSGIUserContextMiddleware",
    "propagate",
    "request_header",
]

_R = TypeVar("_R")

_SHAPES = "a user id str, a (user, session_id) tuple, an Attribution, or None"


def _check_identify(identify: Any, middleware: str) -> None:
    if not callable(identify):
        raise ConfigurationError(
            f"{middleware} needs identify=<a function of the request that returns {_SHAPES}>, "
            f"got {type(identify).__name__}."
        )


def to_attribution(value: Any) -> Attribution | None:
    """Turn what ``identify`` returned into an :class:`Attribution` (``None``: no user known).

    Raises:
        AttributionError: a value of another shape (the message names its type, never its content).
        UserIdError: the user or session id is not a non-empty ``str`` of at most 256 characters.
    """
    if value is None:
        return None
    if isinstance(value, Attribution):
        attribution = value
    elif isinstance(value, str):
        attribution = Attribution(user=value)
    elif isinstance(value, tuple) and len(value) == 2:
        attribution = Attribution(user=value[0], session_id=value[1])
    else:
        size = f" ({len(value)} items)" if isinstance(value, tuple) else ""
        raise AttributionError(f"identify returned a value of type {type(value).__name__}{size}; return {_SHAPES}.")
    if attribution.user is not None:
        validate_user_id(attribution.user)
    if attribution.session_id is not None:
        validate_user_id(attribution.session_id, field="session_id")
    return None if attribution.is_empty() else attribution


def _context_of(attribution: Attribution) -> user_context:
    return user_context(
        attribution.user,
        session_id=attribution.session_id,
        trace=attribution.trace,
        metadata=attribution.metadata,
    )


def request_header(request: Mapping[str, Any], name: str) -> str | None:
    """A request header from an ASGI ``scope`` or a WSGI ``environ``, or ``None`` when absent.

    Args:
        request: The ASGI scope (headers as byte pairs) or the WSGI environ (``HTTP_*`` keys).
        name: The header name, any case (``"Authorization"``).

    Examples:
        >>> request_header({"type": "http", "headers": [(b"x-api-key", b"k1")]}, "X-API-Key")
        'k1'
        >>> request_header({"HTTP_X_API_KEY": "k2"}, "X-API-Key")
        'k2'
    """
    if "headers" in request and "type" in request:
        wanted = name.lower().encode("latin-1")
        for key, value in request["headers"]:
            if key.lower() == wanted:
                return bytes(value).decode("latin-1")
        return None
    key = name.upper().replace("-", "_")
    value = request.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}")
    return value if isinstance(value, str) else None


@checked_keywords
class UserContextMiddleware:
    """ASGI middleware: every HTTP or WebSocket request runs inside ``user_context(identify(scope))``.

    The handler, the streamed response body, background tasks and asyncio tasks started while
    serving the request all see the request's user (they run inside the middleware's call, or
    inherit its context). Lifespan events pass through untouched.

    Args:
        app: The ASGI application.
        identify: ``identify(scope)`` returns the user (see the module docstring for the shapes);
            it may be ``async``. Its exceptions propagate (the server answers 500).

    Raises:
        ConfigurationError: ``identify`` is not callable.

    Examples:
        >>> import asyncio
        >>> from openrouter_attribution import current_attribution
        >>> seen = []
        >>> async def app(scope, receive, send):
        ...     seen.append(current_attribution().user)
        >>> wrapped = UserContextMiddleware(app, identify=lambda scope: "app_42")
        >>> asyncio.run(wrapped({"type": "http", "headers": []}, None, None))
        >>> seen
        ['app_42']
    """

    __slots__ = ("app", "identify")

    def __init__(self, app: Callable[..., Any], *, identify: Callable[[Mapping[str, Any]], Any]) -> None:
        _check_identify(identify, "UserContextMiddleware")
        if not callable(app):
            raise ConfigurationError(f"UserContextMiddleware needs an ASGI app, got {type(app).__name__}.")
        self.app = app
        """The wrapped ASGI application."""
        self.identify = identify
        """Who a request is for: ``identify(scope)``."""

    async def __call__(self, scope: Mapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        found = self.identify(scope)
        if inspect.isawaitable(found):
            found = await found
        attribution = to_attribution(found)
        if attribution is None:
            await self.app(scope, receive, send)
            return
        with _context_of(attribution):
            await self.app(scope, receive, send)


class WSGIUserContextMiddleware:
    """WSGI middleware: every request runs inside ``user_context(identify(environ))``.

    A WSGI response body is often an iterable the server consumes after the application has
    returned (Flask's streamed responses, generators). Each request therefore gets its own copy of
    the :mod:`contextvars` context holding the user; the application runs in it, and so does every
    step of the body's iteration and its ``close()``. Lists and tuples (already built bodies) and
    ``wsgi.file_wrapper`` bodies are handed to the server as they are.

    Args:
        app: The WSGI application (for Flask: ``app.wsgi_app``).
        identify: ``identify(environ)`` returns the user (see the module docstring for the shapes).
            Its exceptions propagate.

    Raises:
        ConfigurationError: ``identify`` is not callable.

    Examples:
        >>> from openrouter_attribution import current_attribution
        >>> def app(environ, start_response):
        ...     start_response("200 OK", [("Content-Type", "text/plain")])
        ...     yield (current_attribution().user or "-").encode()
        >>> wrapped = WSGIUserContextMiddleware(app, identify=lambda environ: ("app_42", "chat-1"))
        >>> b"".join(wrapped({"REQUEST_METHOD": "GET"}, lambda status, headers: None))
        b'app_42'
    """

    __slots__ = ("app", "identify")

    def __init__(self, app: Callable[..., Any], *, identify: Callable[[Mapping[str, Any]], Any]) -> None:
        _check_identify(identify, "WSGIUserContextMiddleware")
        if not callable(app):
            raise ConfigurationError(f"WSGIUserContextMiddleware needs a WSGI app, got {type(app).__name__}.")
        self.app = app
        """The wrapped WSGI application."""
        self.identify = identify
        """Who a request is for: ``identify(environ)``."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = self.identify(environ)
        if inspect.isawaitable(found):
            if hasattr(found, "close"):
                found.close()  # never awaited: close it to avoid a "never awaited" warning
            raise ConfigurationError("WSGIUserContextMiddleware needs a sync identify function, got a coroutine.")
        attribution = to_attribution(found)
        if attribution is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        context = contextvars.copy_context()
        context.run(_context_of(attribution).__enter__)  # set in this request's context only
        body: Iterable[bytes] = context.run(self.app, environ, start_response)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(body, list | tuple) or (isinstance(file_wrapper, type) and isinstance(body, file_wrapper)):
            return body
        return _BodyInContext(body, context)


class _BodyInContext:
    """A WSGI body whose iteration and ``close()`` run in the request's context."""

    __slots__ = ("_body", "_context", "_iterator")

    def __init__(self, body: Iterable[bytes], context: contextvars.Context) -> None:
        self._body = body
        self._context = context
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)


class PropagatingExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the context of the code that submitted them.

    Every ``submit`` (and so every ``map``) applies :func:`~openrouter_attribution.propagate`: a
    task sees the :func:`~openrouter_attribution.user_context` active where it was submitted, not
    the one (if any) of the code that started the worker thread.

    Examples:
        >>> from openrouter_attribution import current_attribution, user_context
        >>> with PropagatingExecutor(max_workers=2) as pool, user_context("app_7"):
        ...     list(pool.map(lambda _: current_attribution().user, range(2)))
        ['app_7', 'app_7']
    """

    def submit(self, fn: Callable[..., _R], /, *args: Any, **kwargs: Any) -> Future[_R]:
        """Schedule ``fn(*args, **kwargs)`` in the submitting code's context."""
        return super().submit(propagate(fn), *args, **kwargs)
