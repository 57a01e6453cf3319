"""The model endpoints a chat model can call, each as the shapes the one call pipeline needs.

:class:`~openrouter_attribution.client.Invoker` runs every call the same way (resolve -> policy ->
budget -> build -> call -> parse -> record); an :class:`Endpoint` says what differs between OpenRouter's
chat completions and its Responses API: the path, how the body is built and checked, how the answer and
the stream are read, how the budget prices the body, and the ``kind`` its usage records get.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from openrouter_attribution.transport import CHAT_PATH, RESPONSES_PATH
from openrouter_attribution.wire.request import build_body, check_request_fields
from openrouter_attribution.wire.response import Completion, parse_completion
from openrouter_attribution.wire.responses import (
    build_responses_body,
    check_responses_fields,
    parse_response,
    priced_view,
)
from openrouter_attribution.wire.responses_stream import ResponsesStreamMeta
from openrouter_attribution.wire.stream import StreamMeta

__all__ = ["CHAT", "RESPONSES", "Endpoint"]


class Endpoint(NamedTuple):
    """What one endpoint adds to the call pipeline (shapes only)."""

    path: str
    """Path relative to the base URL."""
    kind: str
    """The ``kind`` of its usage records."""
    build: Callable[..., dict[str, Any]]
    """Builds the body (the keywords of :func:`~openrouter_attribution.wire.request.build_body`)."""
    check: Callable[..., None]
    """Checks a call's parameter names (``check(params, where=...)``) before any I/O."""
    parse: Callable[[Any], Completion]
    """Parses a non-streamed answer."""
    stream_meta: Callable[[], StreamMeta]
    """A new reader of one stream."""
    priced: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    """The body as the budget's cost ceiling reads it (chat-shaped)."""


def _same(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body


CHAT = Endpoint(CHAT_PATH, "chat", build_body, check_request_fields, parse_completion, StreamMeta, _same)
"""``POST /chat/completions``."""
RESPONSES = Endpoint(RESPONSES_PATH, "responses", build_responses_body, check_responses_fields, parse_response,
                     ResponsesStreamMeta, priced_view)  # fmt: skip
"""``POST /responses`` (stateless: ``store: false``, the whole history in ``input``)."""
