"""The public face of the fake OpenRouter: :class:`FakeOpenRouter`, a real HTTP/1.1 server on a thread.

The socket plumbing lives in :mod:`~openrouter_attribution.testing.transport`,
request handling in :mod:`~openrouter_attribution.testing.routes`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from openrouter_attribution.testing.catalog import Catalog, ModelInfo
from openrouter_attribution.testing.faults import Fault
from openrouter_attribution.testing.recording import RecordedRequest
from openrouter_attribution.testing.routes import API_PREFIX
from openrouter_attribution.testing.state import DEFAULT_MANAGEMENT_KEY, ServerState
from openrouter_attribution.testing.transport import HTTPServer
from openrouter_attribution.testing.validation import require_schema

__all__ = ["DEFAULT_API_KEY", "FakeOpenRouter"]

DEFAULT_API_KEY = "sk-or-fake-key"
"""The API key a :class:`FakeOpenRouter` accepts unless told otherwise."""


def _load_request_schemas() -> None:
    """Import the OpenRouter SDK's request schemas before serving, on the caller's thread.

    Imported lazily on a server thread at the first request, the SDK (and the legacy ``httpx`` it
    loads) is half-initialised in ``sys.modules`` for a moment, and the ``openai`` SDK of a client
    thread that looks ``httpx`` up there at that moment fails with an ``AttributeError``.
    """
    with contextlib.suppress(ImportError):
        import openrouter.components  # noqa: F401
        import openrouter.operations  # noqa: F401


class FakeOpenRouter:
    """A local, OpenRouter-compatible HTTP server for offline tests.

    It speaks OpenRouter's wire format on ``http://127.0.0.1:<port>/api/v1``:
    ``POST /chat/completions`` (plain and streaming, with tool calls, structured
    output, reasoning and usage with cost), ``POST /embeddings`` (deterministic
    vectors, float or base64, usage with cost; see
    :mod:`~openrouter_attribution.testing.embeddings`), ``POST /rerank`` (scores from word overlap,
    usage with cost; see :mod:`~openrouter_attribution.testing.rerank`), ``GET /models``,
    ``GET /embeddings/models``, ``GET /generation?id=...`` and ``GET /key``, all
    behind bearer auth. Chat, embeddings and rerank bodies are validated against
    OpenRouter's published request schemas (from the official ``openrouter`` SDK,
    the ``testing`` extra; without it the server refuses to start) and every model
    id against the catalog that ``GET /models`` (``GET /embeddings/models`` for
    embeddings) lists, rerank ids against the rerank catalog (unknown ids get
    OpenRouter's 400, see :mod:`~openrouter_attribution.testing.catalog`). Answers are deterministic
    (see :mod:`~openrouter_attribution.testing.content`), every request is
    recorded and logged at INFO on the ``openrouter_attribution.testing`` logger
    (method, path, model, user, session, status), and faults can be injected
    (see :mod:`~openrouter_attribution.testing.faults`).

    Args:
        api_key: The only bearer token accepted.
        host: Interface to listen on.
        port: TCP port, 0-65535; ``0`` picks a free one.
        latency: Seconds to wait before answering each chat or embeddings request.
        models: Models to add to the catalog: :class:`~openrouter_attribution.testing.ModelInfo`
            entries, or ``"vendor/name"`` ids priced with ``DEFAULT_PRICING``.
        management_key: The key of the management API (``/keys``, ``/external-users``); it cannot
            call models. Keys it creates can, within their limits (see :mod:`~.testing.keys`).

    Raises:
        ModuleNotFoundError: The ``openrouter`` SDK (``pip install "openrouter-attribution[testing]"``)
            is not installed.
        ValueError: ``port`` is out of range, or a model in ``models`` is not ``vendor/name``.

    Examples:
        >>> import openai
        >>> from openrouter_attribution.testing import FakeOpenRouter
        >>> with FakeOpenRouter() as server:
        ...     client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
        ...     reply = client.chat.completions.create(
        ...         model="openai/gpt-4o-mini",
        ...         messages=[{"role": "user", "content": "Hello!"}],
        ...         extra_body={"user": "app_42", "session_id": "chat-1"},
        ...     )
        ...     client.close()
        ...     print(reply.choices[0].message.content)
        ...     print(server.last_request.body["user"], server.generations[reply.id]["session_id"])
        [openai/gpt-4o-mini] Reply to: Hello!
        app_42 chat-1
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        models: Iterable[ModelInfo | str] = (),
        management_key: str = DEFAULT_MANAGEMENT_KEY,
    ) -> None:
        require_schema()
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be a whole number from 0 to 65535 (0: any free port), got {port!r}")
        self._host = host
        self._requested_port = port
        self._state = ServerState(api_key, latency, Catalog(models), management_key)
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeOpenRouter:
        """Bind the port and start serving on a background thread.

        Returns:
            The server itself, for chaining.

        Raises:
            RuntimeError: The server is already running.
        """
        if self._server is not None:
            raise RuntimeError("FakeOpenRouter is already running")
        _load_request_schemas()
        self._server = HTTPServer((self._host, self._requested_port), self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeOpenRouter",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection and join every thread. Idempotent.

        Args:
            timeout: Seconds to wait for each thread (a request still sleeping
                for ``latency`` or ``slow-first-byte`` finishes first).
        """
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections(timeout)
        if thread is not None:
            thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    # -- addresses --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on (only while running)."""
        if self._server is None:
            raise RuntimeError("FakeOpenRouter is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL to give clients, e.g. ``http://127.0.0.1:54321/api/v1``."""
        return self.url + API_PREFIX

    @property
    def api_key(self) -> str:
        """The bearer token the server accepts."""
        return self._state.api_key

    @property
    def management_key(self) -> str:
        """The management key (creates and manages API keys; cannot call models)."""
        return self._state.keys.management_key

    @property
    def clock(self) -> Callable[[], float]:
        """Seconds since the epoch as the key limits see them (``time.time`` until replaced; :meth:`reset`
        restores it). Set a function to move the server to another day."""
        return self._state.keys.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._state.keys.clock = clock

    def created_keys(self) -> list[dict[str, Any]]:
        """Every API key the management API created, as ``GET /keys/{hash}`` describes it."""
        return self._state.keys.page(0, include_disabled=True, limit=None)["data"]

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """The catalog: every model ``GET /models`` lists (the ``openrouter/auto`` router aside)."""
        return self._state.catalog.models

    @property
    def latency(self) -> float:
        """Seconds to wait before answering each chat or embeddings request (settable; restored by :meth:`reset`)."""
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    @property
    def generation_delay(self) -> float:
        """Seconds after a generation ends before ``GET /generation`` knows it (until then: 404, as
        OpenRouter answers for fresh ids); settable, reset to 0 by :meth:`reset`."""
        return self._state.generation_delay

    @generation_delay.setter
    def generation_delay(self, seconds: float) -> None:
        self._state.generation_delay = seconds

    @property
    def generation_latency(self) -> float:
        """Seconds to wait before answering each ``GET /generation``; settable, reset by :meth:`reset`."""
        return self._state.generation_latency

    @generation_latency.setter
    def generation_latency(self, seconds: float) -> None:
        self._state.generation_latency = seconds

    def forget_generation(self, generation_id: str) -> bool:
        """Make ``GET /generation`` answer 404 for ``generation_id`` from now on (a generation OpenRouter
        does not know); returns whether it was known."""
        return self._state.forget_generation(generation_id)

    # -- records ------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (including rejected ones), oldest first; a snapshot."""
        return self._state.log.snapshot()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /api/v1/chat/completions`` requests, oldest first; a snapshot."""
        return [r for r in self.requests if r.is_chat]

    @property
    def responses_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /api/v1/responses`` requests (including rejected ones), oldest first; a snapshot."""
        return [r for r in self.requests if r.is_responses]

    @property
    def embeddings_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /api/v1/embeddings`` requests (including rejected ones), oldest first; a snapshot."""
        return [r for r in self.requests if r.is_embeddings]

    @property
    def rerank_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /api/v1/rerank`` requests (including rejected ones), oldest first; a snapshot."""
        return [r for r in self.requests if r.is_rerank]

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request.

        Raises:
            LookupError: No request was received yet.
        """
        records = self.requests
        if not records:
            raise LookupError("FakeOpenRouter has not received any request yet")
        return records[-1]

    @property
    def generations(self) -> dict[str, dict[str, Any]]:
        """Generations served, by id, as ``GET /generation`` returns them (its ``data``); a snapshot."""
        return self._state.generations()

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start or the last :meth:`reset`."""
        return self._state.connections

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of unexpected server-side exceptions (each answered with a 500)."""
        return self._state.internal_errors

    def wait_for_requests(self, count: int, *, timeout: float = 5.0, chat_only: bool = False) -> list[RecordedRequest]:
        """Block until at least ``count`` requests (chat requests if ``chat_only``) were received.

        Returns:
            The matching records.

        Raises:
            TimeoutError: They did not arrive within ``timeout`` seconds.
        """
        return self._state.log.wait_for(count, timeout=timeout, chat_only=chat_only)

    # -- control --------------------------------------------------------------------------------------

    def inject_fault(
        self,
        name: str,
        count: int = 1,
        *,
        after: int | None = None,
        retry_after: float | None = None,
        delay_ms: int | None = None,
    ) -> None:
        """Queue a fault for upcoming model requests (chat completions, embeddings and rerank, in arrival order).

        Args:
            name: One of :data:`~openrouter_attribution.testing.faults.FAULT_NAMES`.
            count: How many model requests it applies to.
            after: How many model requests to let through first (default: none).
            retry_after: ``Retry-After`` seconds for status faults (``429`` defaults to 1).
            delay_ms: Delay of ``slow-first-byte``.

        Raises:
            ValueError: Unknown fault name, or a negative ``count`` / ``after``.
        """
        if count < 1 or (after or 0) < 0:
            raise ValueError("count must be >= 1 and after >= 0")
        options: dict[str, Any] = {"retry_after": retry_after}
        if delay_ms is not None:
            options["delay_ms"] = delay_ms
        self._state.faults.push(Fault(name, **options), count=count, after=after or 0)

    def reset(self) -> None:
        """Forget records, generations, queued faults, the prompt cache and counters; restore ``latency``.

        A request still being answered when this is called (a slow answer its client gave up on) leaves
        no generation behind: the next test starts from nothing, whatever the previous one left running.
        """
        self._state.reset()
