"""Fault injection: make a chat request fail the ways OpenRouter can fail.

A fault is chosen per chat request, first match wins:

1. the request header ``X-Fake-Fault: <name>``;
2. a reserved model id ``fake/fault-<name>`` in ``model`` or ``models``, when
   *no* candidate model is a real one (``{"model": "fake/fault-502",
   "models": ["openai/gpt-4o-mini"]}`` is served by the fallback, as OpenRouter's
   ``models`` routing would; the first fault model decides otherwise);
3. the server's queue, filled by :meth:`FakeOpenRouter.inject_fault
   <openrouter_attribution.testing.FakeOpenRouter.inject_fault>` and consumed
   by the chat, embeddings and rerank requests that reach step 3 (authorised, valid, no
   header or model fault), in FIFO order.

Embeddings and rerank requests take the same faults; the ones that act
mid-generation are answered as a 200 body with an ``error`` object
(``mid-stream-error``), a 200 body that is not JSON (``malformed-chunk``) or the
first half of the answer (``truncated-stream``).

Faults (:data:`FAULT_NAMES`):

* ``401``, ``402``, ``403``, ``408``, ``429``, ``502``, ``503``: the HTTP status
  with OpenRouter's error body ``{"error": {"code", "message", "metadata"}}``.
  ``403`` is a moderation flag (``metadata``: ``reasons``, ``flagged_input``,
  ``provider_name``, ``model_slug``); ``502`` carries ``provider_name`` and
  ``raw``. ``429`` sends ``Retry-After: 1`` unless told otherwise; the others
  send ``Retry-After`` only when a value is given. The value comes from the
  ``X-Fake-Retry-After`` header or ``inject_fault(..., retry_after=...)``;
  ``retry_after=None`` on a 429 keeps the default.
* ``mid-stream-error``: streaming, two content chunks and then OpenRouter's
  in-stream error event (HTTP 200; a chunk with a top-level ``error``
  ``{"code": 502, ...}`` and ``choices[0].finish_reason: "error"``); the stream
  then ends without ``data: [DONE]`` ("the stream is terminated after this
  event"). Non-streaming, a 200 body whose ``choices[0].finish_reason`` is
  ``"error"`` with a top-level ``error`` object and the partial content.
* ``malformed-chunk``: streaming, a ``data:`` line that is not JSON after one
  good chunk; non-streaming, a 200 ``application/json`` body that is not JSON.
* ``drop-connection``: the socket is closed without a response (non-streaming)
  or after two chunks, without ending the chunked body (streaming).
* ``slow-first-byte``: sleep before the first byte, then answer normally; the
  delay is the ``X-Fake-Delay-Ms`` header, ``inject_fault(..., delay_ms=...)``,
  or :data:`DEFAULT_DELAY_MS`.
* ``truncated-stream``: the answer stops early but the HTTP body ends cleanly, as
  when a proxy closes the stream. Streaming: two content chunks, then the end of
  the chunked body, without ``finish_reason``, usage or ``data: [DONE]``.
  Non-streaming: the first half of the JSON body, with a ``Content-Length`` that
  matches what is sent.
* ``error-body``: HTTP 200 whose body is OpenRouter's error object
  (``{"error": {"code": 502, "message", "metadata"}}``, ``application/json``),
  for streamed requests too (no event stream at all).
* ``empty-body``: HTTP 200 with an empty body. Non-streaming:
  ``application/json`` and ``Content-Length: 0``; streaming: a
  ``text/event-stream`` whose body ends before any event.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openrouter_attribution.testing.catalog import provider_name_for

__all__ = [
    "DEFAULT_DELAY_MS",
    "DELAY_HEADER",
    "FAULT_HEADER",
    "FAULT_MODEL_PREFIX",
    "FAULT_NAMES",
    "RETRY_AFTER_HEADER",
    "Fault",
    "FaultQueue",
    "UnknownFaultError",
    "fault_from_headers",
    "fault_from_models",
]

FAULT_HEADER = "X-Fake-Fault"
DELAY_HEADER = "X-Fake-Delay-Ms"
RETRY_AFTER_HEADER = "X-Fake-Retry-After"
FAULT_MODEL_PREFIX = "fake/fault-"
DEFAULT_DELAY_MS = 1500
STATUS_FAULTS = ("401", "402", "403", "408", "429", "502", "503")
FAULT_NAMES = (*STATUS_FAULTS, "mid-stream-error", "malformed-chunk", "drop-connection", "slow-first-byte",
               "truncated-stream", "error-body", "empty-body")  # fmt: skip
"""Every fault name understood by the server."""

_MESSAGES = {
    401: "User not found.",
    402: "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
    403: (
        '{model} requires moderation on {provider}. Your input was flagged for "harassment". No credits were charged.'
    ),
    408: "Request timed out. Please try again.",
    429: "Rate limit exceeded. Please retry after the delay in the Retry-After header.",
    502: "Provider returned error",
    503: "No allowed providers are available for the selected model.",
}


class UnknownFaultError(ValueError):
    """A fault name that is not one of :data:`FAULT_NAMES`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown fake fault {name!r}; expected one of: {', '.join(FAULT_NAMES)}")


@dataclass(frozen=True)
class Fault:
    """A fault to apply to one chat request.

    Attributes:
        name: One of :data:`FAULT_NAMES`.
        retry_after: ``Retry-After`` seconds to send; ``None`` means the default
            (1 for ``429``, no header for the other statuses).
        delay_ms: Delay of ``slow-first-byte`` in milliseconds.
    """

    name: str
    retry_after: float | None = None
    delay_ms: int = DEFAULT_DELAY_MS

    def __post_init__(self) -> None:
        if self.name not in FAULT_NAMES:
            raise UnknownFaultError(self.name)

    @property
    def status(self) -> int | None:
        """The HTTP status of a status fault, ``None`` for the other faults."""
        return int(self.name) if self.name in STATUS_FAULTS else None

    def error_headers(self) -> dict[str, str]:
        """Return the extra response headers of a status fault (``Retry-After``)."""
        seconds = self.retry_after if self.retry_after is not None else (1 if self.name == "429" else None)
        if seconds is None:
            return {}
        return {"Retry-After": str(int(seconds)) if float(seconds).is_integer() else str(seconds)}

    def error_body(self, model_id: str, user_text: str) -> dict[str, Any]:
        """Return the error object (``{"code", "message", "metadata"}``) of a status fault."""
        code = self.status or 502
        provider = provider_name_for(model_id)
        metadata: dict[str, Any] = {}
        if code == 403:
            flagged = user_text if len(user_text) <= 100 else f"{user_text[:48]}...{user_text[-49:]}"
            metadata = {
                "reasons": ["harassment"],
                "flagged_input": flagged,
                "provider_name": provider,
                "model_slug": model_id,
            }
        elif code == 502:
            metadata = {
                "provider_name": provider,
                "raw": "upstream connection reset (injected by FakeOpenRouter)",
            }
        message = _MESSAGES[code].format(model=model_id, provider=provider)
        return {"code": code, "message": message, "metadata": metadata}

    def stream_error(self, model_id: str) -> dict[str, Any]:
        """Return the ``error`` object of a mid-generation failure (``mid-stream-error``)."""
        return {
            "code": 502,
            "message": "Provider disconnected unexpectedly (injected by FakeOpenRouter)",
            "metadata": {"error_type": "provider_unavailable", "provider_name": provider_name_for(model_id)},
        }


def fault_from_headers(headers: Mapping[str, str]) -> Fault | None:
    """Return the fault named by the ``X-Fake-Fault`` header, if any.

    Raises:
        UnknownFaultError: The header names an unknown fault.
        ValueError: ``X-Fake-Delay-Ms`` or ``X-Fake-Retry-After`` is not a number.
    """
    name = headers.get(FAULT_HEADER)
    if not name:
        return None
    return Fault(name.strip(), **_options_from_headers(headers))


def fault_from_models(candidates: list[str], headers: Mapping[str, str]) -> Fault | None:
    """Return the fault of the first ``fake/fault-<name>`` model when no candidate is a real model.

    Raises:
        UnknownFaultError: The first fault model names an unknown fault.
    """
    faulty = [m for m in candidates if m.startswith(FAULT_MODEL_PREFIX)]
    if not faulty or len(faulty) < len(candidates):
        return None
    return Fault(faulty[0].removeprefix(FAULT_MODEL_PREFIX), **_options_from_headers(headers))


def _options_from_headers(headers: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if headers.get(DELAY_HEADER):
        options["delay_ms"] = int(headers[DELAY_HEADER])
    if headers.get(RETRY_AFTER_HEADER):
        options["retry_after"] = float(headers[RETRY_AFTER_HEADER])
    return options


class FaultQueue:
    """Thread-safe FIFO of queued faults, each for ``count`` chat requests after skipping ``after``."""

    def __init__(self) -> None:
        self._entries: deque[list[Any]] = deque()
        self._lock = threading.Lock()

    def push(self, fault: Fault, *, count: int, after: int) -> None:
        """Queue ``fault`` for ``count`` chat requests, once ``after`` chat requests went through."""
        with self._lock:
            self._entries.append([fault, after, count])

    def pop(self) -> Fault | None:
        """Consume one chat request's worth of the queue: the fault to apply, or ``None``."""
        with self._lock:
            if not self._entries:
                return None
            entry = self._entries[0]
            if entry[1] > 0:
                entry[1] -= 1
                return None
            entry[2] -= 1
            if entry[2] <= 0:
                self._entries.popleft()
            fault: Fault = entry[0]
            return fault

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(entry[2] for entry in self._entries)
