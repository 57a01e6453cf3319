"""The web middleware without sockets: identify() shapes, errors, header lookup, context per request."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from openrouter_attribution import Attribution, AttributionError, ConfigurationError, UserIdError, current_attribution
from openrouter_attribution.web import (
    PropagatingExecutor,
    UserContextMiddleware,
    WSGIUserContextMiddleware,
    request_header,
    to_attribution,
)

A = Attribution


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("app_1", A(user="app_1")),
        (("app_1", "chat-1"), A(user="app_1", session_id="chat-1")),
        ((None, "chat-1"), A(session_id="chat-1")),
        ((None, None), None),
        (A(user="app_1", metadata={"plan": "pro"}), A(user="app_1", metadata={"plan": "pro"})),
        (A(), None),
    ],
)
def test_identify_shapes(value, expected):
    assert to_attribution(value) == expected


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (42, AttributionError, "identify returned a value of type int; return a user id str"),
        (["app_1"], AttributionError, "identify returned a value of type list"),
        (("a", "b", "c"), AttributionError, "identify returned a value of type tuple (3 items)"),
        ({"user": "app_1"}, AttributionError, "identify returned a value of type dict"),
        ((42, "s"), UserIdError, "`user` must be a str, got int"),
        (("app_1", 7), UserIdError, "`session_id` must be a str, got int"),
        ("", UserIdError, "`user` is empty"),
        ("x" * 300, UserIdError, "`user`"),
    ],
)
def test_bad_identify_results_name_the_problem_not_the_value(value, error, message):
    with pytest.raises(error, match=re.escape(message)) as info:
        to_attribution(value)
    assert "app_1" not in str(info.value)


def test_middleware_refuses_a_non_callable_identify():
    for middleware in (UserContextMiddleware, WSGIUserContextMiddleware):
        with pytest.raises(ConfigurationError, match="identify=<a function of the request"):
            middleware(lambda *a: None, identify="X-User-Id")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="needs an? (ASGI|WSGI) app, got NoneType"):
            middleware(None, identify=lambda request: None)  # type: ignore[arg-type]


def test_request_header_reads_asgi_scopes_and_wsgi_environs():
    scope = {"type": "http", "headers": [(b"authorization", b"Bearer t"), (b"x-tenant", b"acme")]}
    environ = {"HTTP_AUTHORIZATION": "Bearer t", "CONTENT_TYPE": "application/json"}
    assert request_header(scope, "Authorization") == "Bearer t"
    assert request_header(scope, "X-TENANT") == "acme"
    assert request_header(scope, "cookie") is None
    assert request_header(environ, "authorization") == "Bearer t"
    assert request_header(environ, "Content-Type") == "application/json"
    assert request_header(environ, "X-Missing") is None


def _asgi_app(seen: list[Any]):
    async def app(scope, receive, send):
        seen.append((scope["type"], current_attribution().user))

    return app


def test_asgi_sets_the_user_per_request_and_restores_it():
    seen: list[Any] = []
    app = UserContextMiddleware(_asgi_app(seen), identify=lambda scope: request_header(scope, "x-user"))

    async def run() -> None:
        await asyncio.gather(
            *(app({"type": "http", "headers": [(b"x-user", f"u{i}".encode())]}, None, None) for i in range(10))
        )
        await app({"type": "websocket", "headers": [(b"x-user", b"ws")]}, None, None)
        await app({"type": "http", "headers": []}, None, None)
        await app({"type": "lifespan"}, None, None)
        assert current_attribution().user is None

    asyncio.run(run())
    assert sorted(seen[:10]) == sorted(("http", f"u{i}") for i in range(10))
    assert seen[10:] == [("websocket", "ws"), ("http", None), ("lifespan", None)]


def test_asgi_identify_may_be_async_and_is_not_called_for_lifespan():
    seen: list[Any] = []
    calls: list[str] = []

    async def identify(scope):
        calls.append(scope["type"])
        await asyncio.sleep(0)
        return ("app_async", "s-1")

    app = UserContextMiddleware(_asgi_app(seen), identify=identify)
    asyncio.run(app({"type": "http", "headers": []}, None, None))
    asyncio.run(app({"type": "lifespan"}, None, None))
    assert seen == [("http", "app_async"), ("lifespan", None)]
    assert calls == ["http"]


def test_asgi_bad_identify_result_raises_before_the_app_runs():
    seen: list[Any] = []
    app = UserContextMiddleware(_asgi_app(seen), identify=lambda scope: 42)
    with pytest.raises(AttributionError, match="identify returned a value of type int"):
        asyncio.run(app({"type": "http", "headers": []}, None, None))
    assert seen == []


def _start_response(status, headers, exc_info=None):
    return lambda data: None


def test_wsgi_body_is_iterated_and_closed_in_the_requests_context():
    events: list[Any] = []

    class Body:
        def __iter__(self):
            yield current_attribution().user.encode()
            yield b"|"
            yield (current_attribution().session_id or "").encode()

        def close(self):
            events.append(("close", current_attribution().user))

    def app(environ, start_response):
        start_response("200 OK", [])
        events.append(("app", current_attribution().user))
        return Body()

    wrapped = WSGIUserContextMiddleware(app, identify=lambda environ: (environ["HTTP_X_USER"], "s-1"))
    body = wrapped({"HTTP_X_USER": "app_w"}, _start_response)
    assert current_attribution().user is None  # nothing leaks into the server's context
    assert b"".join(body) == b"app_w|s-1"
    body.close()  # type: ignore[attr-defined]
    assert events == [("app", "app_w"), ("close", "app_w")]


def test_wsgi_passes_built_bodies_through_and_runs_without_user_when_none():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [(current_attribution().user or "-").encode()]

    assert WSGIUserContextMiddleware(app, identify=lambda e: "app_l")({}, _start_response) == [b"app_l"]
    assert WSGIUserContextMiddleware(app, identify=lambda e: None)({}, _start_response) == [b"-"]


def test_wsgi_refuses_an_async_identify():
    async def identify(environ):
        return "app_x"

    wrapped = WSGIUserContextMiddleware(lambda e, s: [b""], identify=identify)
    with pytest.raises(ConfigurationError, match="sync identify function"):
        wrapped({}, _start_response)


def test_propagating_executor_carries_the_submitters_context():
    from openrouter_attribution import user_context

    with PropagatingExecutor(max_workers=2) as pool:
        pool.submit(lambda: None).result()
        with user_context("app_a"):
            first = pool.submit(lambda: current_attribution().user)
        with user_context("app_b"):
            second = list(pool.map(lambda _: current_attribution().user, range(3)))
        assert (first.result(), second) == ("app_a", ["app_b"] * 3)
        assert pool.submit(lambda: current_attribution().user).result() is None


@pytest.mark.parametrize("module", ["openrouter_attribution.web", "openrouter_attribution.attribution"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    results = doctest.testmod(importlib.import_module(module))
    assert results.attempted > 0
    assert results.failed == 0
