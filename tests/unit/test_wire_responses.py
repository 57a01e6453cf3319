"""The Responses API shapes: chat messages to input items, the stateless rules, answers and stream events back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from openrouter_attribution import errors
from openrouter_attribution.wire.response import Usage
from openrouter_attribution.wire.responses import (
    build_responses_body,
    build_responses_input,
    check_responses_fields,
    parse_response,
    parse_responses_usage,
    priced_view,
)
from openrouter_attribution.wire.responses_stream import ResponsesStreamMeta

REASONING = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
USAGE = {
    "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 1},
    "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15,
    "cost": 0.00012, "cost_details": {"upstream_inference_cost": 0.0001}, "is_byok": False,
}  # fmt: skip


def _body(**overrides):
    return build_responses_body(
        messages=[{"role": "user", "content": "hi"}], params={"model": "m"}, overrides=overrides,
        attribution_fields={"user": "app_1", "session_id": "s1"}, stream=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("message", "items"),
    [
        ({"role": "system", "content": "be brief"}, [{"type": "message", "role": "system", "content": "be brief"}]),
        ({"role": "user", "content": [{"type": "text", "text": "see"},
                                      {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
         [{"type": "message", "role": "user", "content": [
             {"type": "input_text", "text": "see"},
             {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}]}]),
        ({"role": "assistant", "content": "", "tool_calls": [CALL], "reasoning_items": [REASONING],
          "reasoning": "chat-format reasoning is not sent"},
         [REASONING, {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": '{"a": 1}'}]),
        ({"role": "assistant", "content": "done"}, [{"type": "message", "role": "assistant", "content": "done"}]),
        ({"role": "tool", "tool_call_id": "call_1", "content": "2"},
         [{"type": "function_call_output", "call_id": "call_1", "output": "2"}]),
        ({"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "2"}]},
         [{"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "2"}]}]),
    ],
    ids=["system", "multimodal-user", "assistant-tool-calls-and-reasoning", "assistant-text", "tool-result",
         "tool-result-parts"],
)  # fmt: skip
def test_chat_messages_become_input_items(message, items):
    assert build_responses_input([message]) == items


def test_an_input_the_responses_api_cannot_take_is_refused_before_sending():
    with pytest.raises(errors.InvalidInputError, match="input_audio"):
        build_responses_input([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])
    with pytest.raises(errors.InvalidInputError, match="'function'"):
        build_responses_input([{"role": "function", "content": "x"}])


def test_the_body_is_stateless_and_names_the_user_twice():
    body = _body()
    assert body == {"model": "m", "input": [{"type": "message", "role": "user", "content": "hi"}], "store": False,
                    "user": "app_1", "safety_identifier": "app_1", "session_id": "s1"}  # fmt: skip


def test_chat_spellings_are_translated():
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    schema = {"type": "json_schema", "json_schema": {"name": "P", "schema": {"type": "object"}, "strict": True}}
    body = _body(max_tokens=20, tools=[tool], tool_choice={"type": "function", "function": {"name": "add"}},
                 response_format=schema)  # fmt: skip
    assert body["max_output_tokens"] == 20
    assert "max_tokens" not in body
    assert body["tools"] == [{"type": "function", "name": "add", "parameters": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "function", "name": "add"}
    assert body["text"] == {"format": {"type": "json_schema", **schema["json_schema"]}}


def test_stateful_and_chat_only_options_are_refused():
    with pytest.raises(errors.ConfigurationError, match="previous_response_id"):
        check_responses_fields({"previous_response_id": "resp_1"}, where="invoke() keyword")
    with pytest.raises(errors.ConfigurationError, match="store must be false"):
        check_responses_fields({"store": True}, where="invoke() keyword")
    with pytest.raises(errors.ConfigurationError, match="seed .* chat-completions parameter"):
        check_responses_fields({"seed": 1}, where="invoke() keyword")
    with pytest.raises(errors.ConfigurationError, match="Unknown OpenRouter Responses parameter"):
        check_responses_fields({"temprature": 1}, where="invoke() keyword")
    check_responses_fields({"store": False, "max_tokens": 5, "text": {}}, where="invoke() keyword")
    with pytest.raises(errors.AttributionError, match="may not contain"):
        build_responses_body(messages=[], params={"model": "m"}, overrides=None, stream=False,
                             attribution_fields={"metadata": {"a[0]": "x"}})  # fmt: skip
    with pytest.raises(errors.ConfigurationError, match="extra_body"):
        build_responses_body(messages=[], params={"model": "m"}, overrides=None, stream=False,
                             attribution_fields={}, extra_body={"previous_response_id": "r"})  # fmt: skip


def test_the_budget_prices_the_body_as_a_chat_call():
    view = priced_view(_body(max_tokens=20, models=["a", "b"]))
    assert view["max_tokens"] == 20
    assert view["models"] == ["a", "b"]
    assert view["messages"] == [{"content": "hi"}]


def test_usage_is_read_with_exact_cost():
    assert parse_responses_usage(USAGE) == Usage(
        prompt_tokens=10, completion_tokens=5, total_tokens=15, cached_tokens=4, cache_write_tokens=1,
        reasoning_tokens=2, cost=Decimal("0.00012"), upstream_inference_cost=Decimal("0.0001"), is_byok=False,
    )  # fmt: skip


def _answer(*output, status="completed", **extra):
    return {"id": "gen-1", "object": "response", "model": "m", "status": status, "output": list(output),
            "usage": USAGE, **extra}  # fmt: skip


def test_an_answer_becomes_a_neutral_completion():
    message = {"type": "message", "id": "msg_1", "role": "assistant",
               "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}  # fmt: skip
    reasoning = {**REASONING, "summary": [{"type": "summary_text", "text": "thought"}]}
    call = {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": "{}"}
    completion = parse_response(_answer(reasoning, message, call))
    assert completion.message == {
        "role": "assistant", "content": "Hi", "reasoning_items": [reasoning], "reasoning": "thought",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{}"}}],
    }  # fmt: skip
    assert completion.finish_reason == "tool_calls"
    assert completion.usage is not None
    assert completion.usage.cost == Decimal("0.00012")
    cut = parse_response(_answer(message, status="incomplete", incomplete_details={"reason": "max_output_tokens"}))
    assert cut.finish_reason == "length"


@pytest.mark.parametrize(
    ("code", "error_type"),
    [("server_error", errors.ProviderUnavailableError), ("rate_limit_exceeded", errors.RateLimitError),
     ("invalid_prompt", errors.BadRequestError), ("cyber_policy", errors.ModerationError),
     (502, errors.ProviderUnavailableError), ("something_new", errors.APIError)],
)  # fmt: skip
def test_an_error_in_the_answer_is_classified_by_its_code(code, error_type):
    with pytest.raises(error_type) as caught:
        parse_response(_answer(status="failed", error={"code": code, "message": "failed"}))
    assert type(caught.value) is error_type
    assert caught.value.code == code


@pytest.mark.parametrize("body", [None, "", [], {"object": "response"}])
def test_an_unknown_shape_raises(body):
    with pytest.raises(errors.InvalidResponseError):
        parse_response(body)


def _events():
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "add", "arguments": ""}
    return [
        {"type": "response.created", "response": {"id": "gen-1", "model": "m", "status": "in_progress", "output": []}},
        {"type": "response.output_text.delta", "output_index": 0, "delta": "Hel"},
        {"type": "response.output_item.added", "output_index": 1, "item": item},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"a":'},
        {"type": "response.output_item.done", "output_index": 2, "item": REASONING},
        {"type": "response.completed", "response": _answer({**item, "arguments": '{"a":1}'})},
    ]


def test_stream_events_become_chat_deltas_with_usage_at_the_end():
    meta = ResponsesStreamMeta()
    deltas = [meta.take(event) for event in _events()]
    assert deltas == [
        ({}, None),
        ({"content": "Hel"}, None),
        ({"tool_calls": [{"index": 1, "id": "call_1", "type": "function",
                          "function": {"name": "add", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 1, "function": {"arguments": '{"a":'}}]}, None),
        ({"reasoning_items": [REASONING]}, None),
        ({}, "tool_calls"),
    ]  # fmt: skip
    assert (meta.id, meta.model, meta.chunks) == ("gen-1", "m", 6)
    assert meta.usage is not None
    assert meta.usage.cost == Decimal("0.00012")
    meta.check_end()


def test_a_stream_without_its_completed_event_is_truncated():
    meta = ResponsesStreamMeta()
    for event in _events()[:-1]:
        meta.take(event)
    with pytest.raises(errors.TruncatedStreamError):
        meta.check_end()


@pytest.mark.parametrize(
    "event",
    [{"type": "response.failed", "response": {"id": "gen-1", "status": "failed",
                                              "error": {"code": "server_error", "message": "gone"}}},
     {"type": "error", "code": "server_error", "message": "gone", "param": None}],
    ids=["response.failed", "error"],
)  # fmt: skip
def test_a_failure_event_raises_the_typed_error_in_stream(event):
    with pytest.raises(errors.ProviderUnavailableError) as caught:
        ResponsesStreamMeta().take(event)
    assert caught.value.in_stream
    assert caught.value.message == "gone"
