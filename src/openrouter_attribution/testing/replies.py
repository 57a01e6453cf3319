"""The replies of the fake server's routes: what the HTTP layer writes back, without socket I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openrouter_attribution.testing.responses import build_error_body

__all__ = ["DropReply", "JsonReply", "RawReply", "Reply", "StreamReply", "error_reply", "reply_status"]


@dataclass(frozen=True)
class JsonReply:
    """A complete JSON response."""

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RawReply:
    """A complete response with arbitrary bytes (used for a malformed body)."""

    status: int
    data: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamReply:
    """A ``text/event-stream`` response, sent with chunked transfer encoding.

    Attributes:
        events: SSE pieces, each written as one HTTP chunk.
        headers: Extra response headers.
        drop_after: When set, close the socket abruptly after that many events,
            without ending the chunked body.
    """

    events: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None


@dataclass(frozen=True)
class DropReply:
    """Close the connection without sending anything."""


Reply = JsonReply | RawReply | StreamReply | DropReply


def error_reply(code: int, message: str, headers: dict[str, str] | None = None) -> JsonReply:
    """Return OpenRouter's error body with HTTP status ``code``."""
    return JsonReply(code, build_error_body(code, message), headers or {})


def reply_status(reply: Reply) -> str:
    """The HTTP status a reply is sent with, as logged (``"dropped"`` for a closed connection)."""
    if isinstance(reply, DropReply):
        return "dropped"
    return "200" if isinstance(reply, StreamReply) else str(reply.status)
