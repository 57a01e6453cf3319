"""When a stream counts as finished, and what the transport says about bodies that are not event streams."""

from __future__ import annotations

import pytest

from openrouter_attribution import errors
from openrouter_attribution.client import StreamMeta
from openrouter_attribution.transport import _raise_for_json_body
from openrouter_attribution.wire.response import parse_completion

CONTENT = {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
FINISH = {"id": "gen-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"id": "gen-1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.1}}


def _meta(*chunks: dict, done: bool = False) -> StreamMeta:
    meta = StreamMeta()
    for chunk in chunks:
        meta.take(chunk)
    meta.done = done
    return meta


@pytest.mark.parametrize(
    "meta",
    [_meta(CONTENT, FINISH, USAGE, done=True), _meta(CONTENT, FINISH, USAGE), _meta(CONTENT, done=True),
     _meta(done=True)],
    ids=["everything", "no-done", "done-without-finish-or-usage", "done-only"],
)  # fmt: skip
def test_finished_streams(meta: StreamMeta) -> None:
    meta.check_end()


@pytest.mark.parametrize(
    ("meta", "missing"),
    [(_meta(CONTENT), "no finish_reason, no usage"), (_meta(CONTENT, FINISH), "no usage,"),
     (_meta(CONTENT, USAGE), "no finish_reason,")],
    ids=["content-only", "no-usage", "no-finish"],
)  # fmt: skip
def test_streams_cut_short(meta: StreamMeta, missing: str) -> None:
    with pytest.raises(errors.TruncatedStreamError) as info:
        meta.check_end()
    assert info.value.in_stream
    assert missing in str(info.value)
    assert info.value.generation_id == "gen-1"
    assert isinstance(info.value, errors.InvalidResponseError)


def test_a_stream_without_any_event_is_an_empty_body() -> None:
    with pytest.raises(errors.InvalidResponseError, match="empty body") as info:
        _meta().check_end()
    assert not isinstance(info.value, errors.TruncatedStreamError)


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b'{"error": {"code": 429, "message": "slow down"}}', errors.RateLimitError),
     (b'{"error": {"code": 502, "message": "Provider returned error"}}', errors.ProviderUnavailableError),
     (b'{"error": {"code": 403, "message": "flagged", "metadata": {"reasons": ["x"]}}}', errors.ModerationError),
     (b"", errors.InvalidResponseError), (b"  \n", errors.InvalidResponseError),
     (b'{"id": "gen-1", "choices": []}', errors.InvalidResponseError), (b"<html>", errors.InvalidResponseError)],
)  # fmt: skip
def test_a_json_answer_to_a_streamed_request_raises(data: bytes, expected: type[Exception]) -> None:
    with pytest.raises(expected) as info:
        _raise_for_json_body(data)
    assert type(info.value) is expected
    assert not getattr(info.value, "in_stream", False)


@pytest.mark.parametrize("body", [None, "", "  ", b""])
def test_an_empty_completion_body_is_invalid(body: object) -> None:
    with pytest.raises(errors.InvalidResponseError, match="empty body"):
        parse_completion(body)
