"""POST /responses on the local server: OpenRouter's limits, the SDK's shapes, the chat model's answers, faults."""

from __future__ import annotations

import json

import openai
import pytest
from openrouter.components import OpenResponsesResult, StreamEvents
from pydantic import TypeAdapter

MODEL = "openai/gpt-4o-mini"
TOOL = {"type": "function", "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip


def _post(client, **body):
    return client.post("/responses", cast_to=object, body={"model": MODEL, "store": False, **body})


def test_a_text_answer_in_the_sdk_shape_with_usage_and_cost(fake_openrouter, client):
    payload = _post(client, input="Hello there", user="app_1", safety_identifier="app_1")
    OpenResponsesResult.model_validate(payload)
    assert payload["status"] == "completed"
    (message,) = payload["output"]
    assert message["content"][0]["text"] == f"[{MODEL}] Reply to: Hello there"
    assert payload["usage"]["cost"] > 0
    assert payload["usage"]["total_tokens"] == payload["usage"]["input_tokens"] + payload["usage"]["output_tokens"]
    (recorded,) = fake_openrouter.responses_requests
    assert recorded.body["safety_identifier"] == "app_1"
    assert fake_openrouter.generations[payload["id"]]["user"] == "app_1"


def test_the_openai_sdk_reads_the_answer(client):
    response = client.responses.create(model=MODEL, input="Hello", store=False)
    assert response.output_text == f"[{MODEL}] Reply to: Hello"
    assert response.usage is not None
    assert response.usage.output_tokens > 0


def test_tool_calls_then_the_tool_result_as_with_chat(client):
    first = _post(client, input="What is the weather in 'Paris'? use get_weather", tools=[TOOL])
    (call,) = first["output"]
    assert call["type"] == "function_call"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    history = [{"role": "user", "content": "weather?"}, {k: call[k] for k in ("type", "call_id", "name", "arguments")},
               {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]  # fmt: skip
    second = _post(client, input=history, tools=[TOOL])
    assert second["output"][0]["content"][0]["text"] == "The tool returned: sunny"


def test_json_schema_text_format_answers_a_valid_document(client):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    payload = _post(client, input="Name 'Ada'", text={"format": {"type": "json_schema", "name": "p", "schema": schema}})
    assert json.loads(payload["output"][0]["content"][0]["text"]) == {"name": "Ada"}


def test_a_stream_is_sdk_events_ending_with_completed_usage(client):
    body = {"model": MODEL, "input": "Hi there friend", "stream": True, "store": False}
    with client.post("/responses", cast_to=object, stream=True, stream_cls=openai.Stream[object], body=body) as stream:
        events = list(stream)
    adapter = TypeAdapter(StreamEvents)
    for event in events:
        adapter.validate_python(event)
    assert [e["type"] for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["cost"] > 0
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == f"[{MODEL}] Reply to: Hi there friend"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"user": "u" * 257}, "user"),
        ({"safety_identifier": "u" * 257}, "safety_identifier"),
        ({"metadata": {"a[b]": "x"}}, "metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"input": []}, "input"),
    ],
)
def test_documented_limits_are_refused_with_400(client, body, field):
    with pytest.raises(openai.BadRequestError) as caught:
        _post(client, **{"input": "hi", **body})
    assert field in str(caught.value)


def test_faults_apply_to_responses_too(fake_openrouter, client):
    fake_openrouter.inject_fault("429", retry_after=0)
    with pytest.raises(openai.RateLimitError):
        _post(client, input="hi")
    failed = _post(client, input="hi", model="fake/fault-mid-stream-error", models=[])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"


def test_reasoning_comes_encrypted_only_when_included(client):
    plain = _post(client, input="Think", reasoning={"effort": "low"})
    asked = _post(client, input="Think", reasoning={"effort": "low"}, include=["reasoning.encrypted_content"])
    assert [item["type"] for item in plain["output"]] == ["reasoning", "message"]
    assert "encrypted_content" not in plain["output"][0]
    assert asked["output"][0]["encrypted_content"].startswith("sig-")
