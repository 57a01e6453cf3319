"""What a Responses API stream tells about its generation, event by event, as neutral chat-style deltas.

OpenRouter streams ``POST /responses`` as typed server-sent events
(https://openrouter.ai/docs/api-reference/responses/overview): ``response.created``, then per output item
``response.output_item.added``, text in ``response.output_text.delta``, tool-call arguments in
``response.function_call_arguments.delta``, ``response.output_item.done``, and at the end
``response.completed`` (or ``response.incomplete``) carrying the whole response with its ``usage`` and
``cost``. A failure is a ``response.failed`` or ``error`` event. The stream is finished when the
``response.completed`` / ``response.incomplete`` event arrived (or a ``data: [DONE]``); anything short of
that is a stream cut short. Framework-neutral and free of I/O.
"""

from __future__ import annotations

import time
from typing import Any

from openrouter_attribution.errors import InvalidResponseError
from openrouter_attribution.wire.responses import finish_reason, parse_responses_error, parse_responses_usage
from openrouter_attribution.wire.stream import StreamMeta

__all__ = ["ResponsesStreamMeta"]

_NO_DELTA: dict[str, Any] = {}
_ENDS = ("response.completed", "response.incomplete")


class ResponsesStreamMeta(StreamMeta):
    """:class:`~openrouter_attribution.wire.stream.StreamMeta` for a Responses API stream: each event becomes
    a chat-style delta (``content``, ``tool_calls`` pieces keyed by ``index``, ``reasoning``,
    ``reasoning_items``), so the adapters read both APIs' streams the same way."""

    __slots__ = ()

    def take(self, chunk: Any) -> tuple[dict[str, Any], str | None]:
        """Parse one event, note what it says about the generation, return ``(delta, finish_reason)``.

        Raises:
            APIError: the event reports a failure (``response.failed`` or ``error``).
            InvalidResponseError: the event is not a JSON object.
        """
        if not isinstance(chunk, dict):
            raise InvalidResponseError("OpenRouter sent a stream event that is not a JSON object.")
        self.chunks += 1
        kind = chunk.get("type")
        if self.first is None:
            self.first = time.perf_counter()
        if kind == "response.output_text.delta":
            return {"content": chunk.get("delta") or ""}, None
        if kind == "response.function_call_arguments.delta":
            piece = {"index": chunk.get("output_index"), "function": {"arguments": chunk.get("delta")}}
            return {"tool_calls": [piece]}, None
        if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            return {"reasoning": chunk.get("delta") or ""}, None
        if kind in ("response.output_item.added", "response.output_item.done"):
            return _item_delta(chunk, added=kind == "response.output_item.added"), None
        response = chunk.get("response") if isinstance(chunk.get("response"), dict) else None
        if response is not None:
            self._note(response)
        if kind == "error" or kind == "response.failed":
            error = chunk if kind == "error" else (response or {}).get("error") or {"message": "The response failed."}
            raise parse_responses_error(error, generation_id=self.id, in_stream=True)
        if kind in _ENDS and response is not None:
            self.usage = parse_responses_usage(response.get("usage"))
            called = any(item.get("type") == "function_call" for item in response.get("output") or ())
            self.finish_reason = finish_reason(response, {"tool_calls": called})
            return _NO_DELTA, self.finish_reason
        return _NO_DELTA, None

    def _note(self, response: dict[str, Any]) -> None:
        self.id = response.get("id") or self.id
        self.model = response.get("model") or self.model
        self.provider = response.get("provider") or self.provider


def _item_delta(chunk: dict[str, Any], *, added: bool) -> dict[str, Any]:
    """An output item that starts (a tool call's id and name) or ends (a reasoning item, kept whole)."""
    item = chunk.get("item") or {}
    kind = item.get("type")
    if added and kind == "function_call":
        header = {"index": chunk.get("output_index"), "id": item.get("call_id"), "type": "function",
                  "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""}}  # fmt: skip
        return {"tool_calls": [header]}
    if not added and kind == "reasoning":
        return {"reasoning_items": [item]}
    return _NO_DELTA
