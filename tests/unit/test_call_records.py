"""The record of one model call, built on the call path without the checking constructor.

``build_call_record`` makes the tuple itself from what the wire parsers returned; these tests hold it to
the record the keyword constructor makes from the same values, for every shape the parsers let through.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.errors import RateLimitError
from openrouter_attribution.usage.call_records import build_call_record
from openrouter_attribution.usage.handler_records import USAGE_RECORD_ID
from openrouter_attribution.usage.records import UsageRecord
from openrouter_attribution.wire.embeddings import parse_embeddings
from openrouter_attribution.wire.response import parse_completion
from openrouter_attribution.wire.stream import StreamMeta

wire_costs = st.none() | st.integers(0, 10**6) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
wire_counts = st.none() | st.integers(0, 10**9) | st.booleans() | st.text(max_size=4)
usages = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": wire_counts,
        "completion_tokens": wire_counts,
        "cost": wire_costs,
        "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": wire_counts}),
        "completion_tokens_details": st.fixed_dictionaries({"reasoning_tokens": wire_counts}),
    },
)
ids = st.none() | st.text(min_size=1, max_size=30)
names = st.none() | st.text(max_size=30)


def _completion(gen_id: str | None, model: str | None, usage: object) -> dict[str, object]:
    choice = {"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    body: dict[str, object] = {"id": gen_id, "model": model, "provider": "OpenAI", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    return body


def _checked(rec: UsageRecord) -> None:
    """The record is the one the checking constructor makes from its values, and holds a valid cost."""
    assert type(rec) is UsageRecord
    assert UsageRecord(**rec._asdict()) == rec
    assert rec.cost is None or (isinstance(rec.cost, Decimal) and rec.cost.is_finite())
    assert isinstance(rec.record_id, str)
    assert rec.record_id


@given(ids, names, usages, st.none() | st.text(max_size=20), st.none() | st.text(max_size=20))
def test_a_completion_record_equals_the_checked_one(gen_id, model, usage, user, session):
    started = time.perf_counter()
    completion = parse_completion(_completion(gen_id, model, usage))
    body = {"model": "openai/gpt-4o-mini", "messages": []}
    rec = build_call_record(
        body, Attribution(user=user, session_id=session), started, None, completion, None, "langchain"
    )
    _checked(rec)
    assert (rec.user, rec.session_id, rec.model_requested, rec.model_used) == (user, session, body["model"], model)
    assert (rec.outcome, rec.streamed, rec.kind, rec.framework, rec.ttft_s) == ("ok", False, "chat", "langchain", None)
    assert rec.generation_id == gen_id
    assert rec.record_id == (gen_id or rec.record_id)
    assert len(rec.record_id) == (len(gen_id) if gen_id else 32)
    assert 0 <= rec.latency_s < 5
    assert abs(rec.time - time.time()) < 5


@pytest.mark.parametrize("cost", [float("nan"), float("inf"), "NaN", "-Infinity"])
def test_a_cost_that_is_not_finite_is_unknown(cost):
    completion = parse_completion(_completion("gen-1", "m", {"cost": cost, "prompt_tokens": 3}))
    rec = build_call_record({"model": "m"}, Attribution(user="u"), time.perf_counter(), None, completion, None, "x")
    assert rec.cost is None
    assert rec.prompt_tokens == 3
    _checked(rec)


def test_a_failed_call_is_recorded_under_the_id_its_error_carries():
    error = RateLimitError("slow down", status_code=429, generation_id="gen-failed")
    call = ({"model": "m"}, Attribution(user="u"), time.perf_counter(), None, None, error, "llama_index")
    rec = build_call_record(*call)
    _checked(rec)
    assert (rec.outcome, rec.generation_id, rec.record_id, rec.cost) == ("RateLimitError", "gen-failed", "gen-failed",
                                                                         None)  # fmt: skip
    assert getattr(error, USAGE_RECORD_ID) == "gen-failed"
    again = build_call_record(*call)
    assert again.record_id == rec.record_id  # a second recorder of the same failure writes the same row


def test_a_stream_records_its_first_chunk_time_and_usage():
    meta = StreamMeta()
    started = meta.started
    meta.take({"id": "gen-s", "model": "m-used", "provider": "P", "choices": [{"delta": {"content": "a"}}]})
    meta.take({"id": "gen-s", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "cost": 0.5}})
    rec = build_call_record({"model": "m", "stream": True}, Attribution(), started, meta.first, meta, None, "langchain")
    _checked(rec)
    assert (rec.streamed, rec.record_id, rec.model_used, rec.provider) == (True, "gen-s", "m-used", "P")
    assert rec.cost == Decimal("0.5")
    assert rec.ttft_s is not None
    assert 0 <= rec.ttft_s <= rec.latency_s


def test_an_embeddings_record():
    result = parse_embeddings({"id": "gen-e", "model": "e", "data": [{"index": 0, "embedding": [0.1, 0.2]}],
                               "usage": {"prompt_tokens": 7, "cost": 1e-7}}, expected=1)  # fmt: skip
    rec = build_call_record({"model": "e", "input": ["x"]}, Attribution(user="u"), time.perf_counter(), None, result,
                            None, "langchain", "embeddings")  # fmt: skip
    _checked(rec)
    assert (rec.kind, rec.prompt_tokens, rec.cost, rec.completion_tokens) == ("embeddings", 7, Decimal("1E-7"), None)
    assert not math.isnan(rec.latency_s)
