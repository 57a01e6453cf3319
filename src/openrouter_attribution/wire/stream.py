"""What a chat completion stream tells about its generation, chunk by chunk, and whether it ended.

A stream is finished when ``data: [DONE]`` arrived, or when both a ``finish_reason`` and the final
``usage`` did (https://openrouter.ai/docs/api-reference/streaming). Anything short of that is a
stream cut short (a proxy or the network closed the connection), which must never pass for a
complete answer. Framework-neutral and free of I/O.
"""

from __future__ import annotations

import time
from typing import Any

from openrouter_attribution.errors import InvalidResponseError, TruncatedStreamError
from openrouter_attribution.wire.response import Usage, parse_chunk

__all__ = ["StreamAbandoned", "StreamMeta"]


class StreamAbandoned(Exception):
    """How a stream ended, in its usage record, when its consumer stopped reading (closed the generator)
    or cancelled the call before the end: outcome ``"abandoned"``. Never raised to the app."""


class StreamMeta:
    """What a stream has told so far about its generation (filled while it is consumed)."""

    __slots__ = ("chunks", "done", "finish_reason", "first", "id", "model", "provider", "started", "usage")

    def __init__(self) -> None:
        self.chunks = 0
        """Chunks received so far."""
        self.done = False
        """Whether the stream's ``data: [DONE]`` arrived."""
        self.id: str | None = None
        self.model: str | None = None
        self.provider: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.started = time.perf_counter()
        self.first: float | None = None
        """``time.perf_counter()`` when the first chunk arrived."""

    def take(self, chunk: Any) -> tuple[dict[str, Any], str | None]:
        """Parse one chunk, note what it says about the generation, return ``(delta, finish_reason)``."""
        delta, finish_reason, usage = parse_chunk(chunk)
        self.chunks += 1
        if self.first is None:
            self.first = time.perf_counter()
            self.id = chunk.get("id")
            self.model = chunk.get("model")
            self.provider = chunk.get("provider")
        if usage is not None:
            self.usage = usage
        if finish_reason is not None:
            self.finish_reason = finish_reason
        return delta, finish_reason

    def check_end(self) -> None:
        """Raise unless the stream reached its end (``[DONE]``, or a ``finish_reason`` and the final usage).

        Raises:
            InvalidResponseError: the 200 response carried no event at all.
            TruncatedStreamError: events arrived, then the body ended before the stream's end.
        """
        if self.done or (self.finish_reason is not None and self.usage is not None):
            return
        if self.first is None:
            raise InvalidResponseError(
                "OpenRouter answered the streamed request with HTTP 200 and an empty body (no event)."
            )
        missing = [name for name, seen in (("finish_reason", self.finish_reason is not None),
                                           ("usage", self.usage is not None)) if not seen]  # fmt: skip
        raise TruncatedStreamError(
            f"The stream ended after {self.chunks} chunk(s) without its end (no {', no '.join(missing)}, "
            "no data: [DONE]): the answer received is incomplete. The connection was probably closed by "
            "a proxy or the network; retry the call.",
            generation_id=self.id,
        )
