"""WSGI apps served by real WSGI servers on 127.0.0.1: the request's user reaches every model call,
including those made while the server iterates a streamed body after the application returned."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from flask import Flask, Response, request
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from werkzeug.serving import make_server as make_werkzeug_server

from openrouter_attribution import current_attribution, propagate
from openrouter_attribution.web import WSGIUserContextMiddleware, request_header

TOKENS = {f"token-{i}": f"app_user_{i}" for i in range(20)}


def identify(environ: dict[str, Any]) -> tuple[str, str] | None:
    user = TOKENS.get((request_header(environ, "authorization") or "").removeprefix("Bearer "))
    return None if user is None else (user, f"conv-{user}")


def build_flask_app(llm: Any, pool: ThreadPoolExecutor) -> Flask:
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm | StrOutputParser()
    app = Flask("attributed")

    @app.get("/chain")
    def chain_endpoint() -> Any:
        return {"answer": chain.invoke({"q": request.args["q"]}), "user": current_attribution().user}

    @app.get("/stream")
    def stream() -> Response:
        q = request.args["q"]

        def body() -> Iterator[str]:  # runs after the view returned, while the server sends the body
            yield from chain.stream({"q": q})
            yield from chain.stream({"q": "second " + q})

        return Response(body(), mimetype="text/plain")

    @app.get("/pool")
    def pool_endpoint() -> Any:
        q = request.args["q"]
        futures = [pool.submit(propagate(chain.invoke), {"q": f"pooled {n} {q}"}) for n in range(3)]
        return {"answers": [future.result() for future in futures]}

    app.wsgi_app = WSGIUserContextMiddleware(app.wsgi_app, identify=identify)  # type: ignore[method-assign]
    return app


def plain_wsgi_app(llm: Any) -> Any:
    """A framework-free WSGI app returning a generator body."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        q = environ["QUERY_STRING"]
        for chunk in llm.stream(f"plain {q}"):
            yield str(chunk.content).encode()

    return WSGIUserContextMiddleware(app, identify=identify)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _serve(server: Any) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=4)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def flask_url(make_chat, pool) -> Iterator[str]:
    server = make_werkzeug_server("127.0.0.1", 0, build_flask_app(make_chat(), pool), threaded=True)
    with _serve(server) as url:
        yield url


@pytest.fixture
def wsgiref_url(make_chat) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, plain_wsgi_app(make_chat()), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    with _serve(server) as url:
        yield url


def _client_of(recorded: Any) -> int:
    return int(re.search(r"client-(\d+)", recorded.body["messages"][-1]["content"]).group(1))  # type: ignore[union-attr]


def _get(url: str, i: int) -> str:
    response = httpx.get(url, params={"q": f"client-{i}"}, headers={"authorization": f"Bearer token-{i}"}, timeout=60)
    response.raise_for_status()
    return response.text


def _assert_every_request_has_its_clients_user(server: Any, expected_count: int) -> None:
    requests = server.chat_requests
    assert len(requests) == expected_count
    wrong = [
        (r.body.get("user"), _client_of(r))
        for r in requests
        if (r.body.get("user"), r.body.get("session_id"))
        != (f"app_user_{_client_of(r)}", f"conv-app_user_{_client_of(r)}")
    ]
    assert wrong == []


def test_flask_on_werkzeug_chain_stream_and_pool(fake_openrouter, flask_url):
    with ThreadPoolExecutor(max_workers=20) as clients:
        chains = list(clients.map(lambda i: _get(f"{flask_url}/chain", i), range(20)))
        streams = list(clients.map(lambda i: _get(f"{flask_url}/stream", i), range(20)))
        pooled = list(clients.map(lambda i: _get(f"{flask_url}/pool", i), range(20)))
    assert [f"client-{i}" in text and f"app_user_{i}" in text for i, text in enumerate(chains)] == [True] * 20
    assert all(f"second client-{i}" in text for i, text in enumerate(streams))
    assert all(text.count("pooled") == 3 for text in pooled)
    # Per client: 1 chain call, 2 calls while the body streams, 3 calls in the pool.
    _assert_every_request_has_its_clients_user(fake_openrouter, 20 * 6)
    assert sum(1 for r in fake_openrouter.chat_requests if r.body.get("stream")) == 20 * 2


def test_plain_wsgi_generator_body_on_wsgiref(fake_openrouter, wsgiref_url):
    with ThreadPoolExecutor(max_workers=10) as clients:
        bodies = list(clients.map(lambda i: _get(wsgiref_url, i), range(10)))
    assert all(f"plain q=client-{i}" in body for i, body in enumerate(bodies))
    _assert_every_request_has_its_clients_user(fake_openrouter, 10)


def test_anonymous_request_sends_no_user(fake_openrouter, flask_url):
    response = httpx.get(f"{flask_url}/chain", params={"q": "client-0"}, timeout=30)
    assert response.json()["user"] is None
    assert "user" not in fake_openrouter.chat_requests[0].body


def test_bad_identify_result_fails_the_request_before_any_model_call(fake_openrouter, make_chat, pool):
    app = build_flask_app(make_chat(), pool)
    app.wsgi_app = WSGIUserContextMiddleware(app.wsgi_app, identify=lambda environ: 42)  # type: ignore[method-assign]
    server = make_werkzeug_server("127.0.0.1", 0, app, threaded=True)
    with _serve(server) as url:
        response = httpx.get(f"{url}/chain", params={"q": "client-1"}, timeout=30)
    assert response.status_code == 500
    assert fake_openrouter.chat_requests == []
