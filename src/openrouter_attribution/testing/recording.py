"""What the fake server remembers: every request it received, and the generations it served.

Everything here is thread-safe: the HTTP server answers each connection on its
own thread, and tests read the records from the main thread. Locks are held
only to copy or append, never while sleeping or doing I/O.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHAT_PATH", "EMBEDDINGS_PATH", "RERANK_PATH", "RESPONSES_PATH", "HeaderMap", "RecordedRequest",
           "RequestLog"]  # fmt: skip

CHAT_PATH = "/api/v1/chat/completions"
"""Path of the chat completions endpoint."""
EMBEDDINGS_PATH = "/api/v1/embeddings"
RESPONSES_PATH = "/api/v1/responses"
"""Path of the embeddings endpoint."""
RERANK_PATH = "/api/v1/rerank"
"""Path of the rerank endpoint."""


class HeaderMap(Mapping[str, str]):
    """A read-only, case-insensitive mapping of HTTP headers.

    Repeated headers are joined with ``", "`` as RFC 9110 allows.

    Examples:
        >>> headers = HeaderMap([("X-Title", "demo"), ("Accept", "a"), ("accept", "b")])
        >>> headers["x-title"], headers["ACCEPT"]
        ('demo', 'a, b')
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                original, previous = self._items[key]
                self._items[key] = (original, f"{previous}, {value}")
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return f"HeaderMap({dict(self.items())!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake server received it (including rejected ones).

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: URL path without the query string, e.g. ``"/api/v1/chat/completions"``.
        query: Query parameters; a repeated parameter keeps its last value.
        headers: Request headers, case-insensitive.
        raw_body: The body bytes exactly as received.
        body: The body parsed as JSON, or ``None`` when it is empty or not JSON.
        time: When the request was received (``time.time()``).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: HeaderMap
    raw_body: bytes
    body: Any
    time: float = field(default_factory=time.time)

    @classmethod
    def build(
        cls, method: str, path: str, query: dict[str, str], headers: HeaderMap, raw_body: bytes
    ) -> RecordedRequest:
        """Build a record, parsing ``raw_body`` as JSON when it is JSON."""
        return cls(method, path, query, headers, raw_body, _parse_json(raw_body))

    @property
    def is_chat(self) -> bool:
        """Whether this is a ``POST /api/v1/chat/completions`` request."""
        return self.method == "POST" and self.path == CHAT_PATH

    @property
    def is_responses(self) -> bool:
        """Whether this is a ``POST /api/v1/responses`` request."""
        return self.method == "POST" and self.path == RESPONSES_PATH

    @property
    def is_embeddings(self) -> bool:
        """Whether this is a ``POST /api/v1/embeddings`` request."""
        return self.method == "POST" and self.path == EMBEDDINGS_PATH

    @property
    def is_rerank(self) -> bool:
        """Whether this is a ``POST /api/v1/rerank`` request."""
        return self.method == "POST" and self.path == RERANK_PATH


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


class RequestLog:
    """Thread-safe, append-only log of :class:`RecordedRequest` with a wait helper."""

    def __init__(self) -> None:
        self._records: list[RecordedRequest] = []
        self._changed = threading.Condition()

    def append(self, record: RecordedRequest) -> None:
        """Add ``record`` and wake up waiters."""
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()

    def snapshot(self) -> list[RecordedRequest]:
        """Return a copy of the records, oldest first."""
        with self._changed:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._changed:
            self._records.clear()

    def wait_for(self, count: int, *, timeout: float, chat_only: bool) -> list[RecordedRequest]:
        """Block until at least ``count`` records (chat ones only if ``chat_only``) exist.

        Raises:
            TimeoutError: Fewer than ``count`` requests arrived within ``timeout`` seconds.
        """

        def matching() -> list[RecordedRequest]:
            return [r for r in self._records if r.is_chat or not chat_only]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                raise TimeoutError(f"expected {count} requests, got {len(matching())} within {timeout} s")
            return matching()
