"""Tool calls: which tool, arguments from its JSON schema and the user's words, the answer after results."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.integration_tests.chat_models import (
    magic_function,
    magic_function_no_args,
    unicode_customer,
)


def _tool(name: str, properties: dict[str, Any] | None = None, required: list[str] | None = None) -> dict:
    parameters: dict[str, Any] = {"type": "object", "properties": properties or {}}
    if required:
        parameters["required"] = required
    return {
        "type": "function",
        "function": {"name": name, "description": f"The {name} tool.", "parameters": parameters},
    }


MAGIC = convert_to_openai_tool(magic_function)
NO_ARGS = convert_to_openai_tool(magic_function_no_args)
UNICODE = convert_to_openai_tool(unicode_customer)
ADDER = _tool("my_adder_tool", {"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"])
WEATHER = _tool("get_weather", {"location": {"type": "string"}}, ["location"])
BOOKING = _tool(
    "book_trip",
    {
        "city": {"type": "string"},
        "nights": {"type": "integer", "minimum": 1},
        "budget": {"type": "number"},
        "class": {"type": "string", "enum": ["economy", "business"]},
        "refundable": {"type": "boolean"},
        "guests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name"],
            },
        },
        "contact": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "phone": {"type": ["string", "null"]},
            },
        },
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
    ["city", "nights"],
)


def _calls(client, messages, tools, **kwargs):
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, tools=tools, **kwargs)
    calls = reply.choices[0].message.tool_calls or []
    return reply, [(c.function.name, json.loads(c.function.arguments)) for c in calls]


SCHEMA_CASES = [
    pytest.param(
        "What is the value of magic_function(3)? Use the tool.",
        [MAGIC],
        [("magic_function", {"input": 3})],
        id="standard-suite-magic-function",
    ),
    pytest.param(
        "What is the value of magic_function_no_args()? Use the tool.",
        [NO_ARGS],
        [("magic_function_no_args", {})],
        id="no-arguments",
    ),
    pytest.param(
        "Create a customer named '你好啊集团' (Hello Group) - a Chinese technology company",
        [UNICODE],
        [("unicode_customer", {"customer_name": "你好啊集团", "description": "example description"})],
        id="unicode-quoted",
    ),
    pytest.param(
        'Create a customer named "こんにちは株式会社" described as ‘Hello Corporation’',
        [UNICODE],
        [("unicode_customer", {"customer_name": "こんにちは株式会社", "description": "Hello Corporation"})],
        id="unicode-double-and-curly-quotes",
    ),
    pytest.param("What is 3 + 4", [ADDER], [("my_adder_tool", {"a": 3, "b": 4})], id="numbers-in-order"),
    pytest.param("What is -2.5 + 7", [ADDER], [("my_adder_tool", {"a": -2, "b": 7})], id="number-to-integer"),
    pytest.param(
        "What is the weather in San Francisco, CA?",
        [WEATHER],
        [("get_weather", {"location": "example location"})],
        id="string-fallback",
    ),
    pytest.param(
        "Book 'Lisbon' for 0 nights at 950.5 euros with 'Ana' aged 31, it's urgent",
        [BOOKING],
        [
            (
                "book_trip",
                {
                    "city": "Lisbon",
                    "nights": 1,
                    "budget": 950.5,
                    "class": "economy",
                    "refundable": True,
                    "guests": [{"name": "Ana", "age": 31}],
                    "contact": {"email": "user@example.com", "phone": "example phone"},
                    "note": "example note",
                },
            )
        ],
        id="nested-objects-arrays-enums-bounds",
    ),
]


@pytest.mark.parametrize(("text", "tools", "expected"), SCHEMA_CASES)
@pytest.mark.parametrize("tool_choice", [None, "required"])
def test_arguments_come_from_the_schema_and_the_user_text(client, text, tools, expected, tool_choice):
    extra = {"tool_choice": tool_choice} if tool_choice else {}
    reply, calls = _calls(client, text, tools, **extra)
    assert calls == expected
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == ""
    assert all(c.id.startswith("call_") and c.type == "function" for c in choice.message.tool_calls)


def test_unicode_is_not_escaped_on_the_wire(client):
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        tools=[UNICODE],
        messages=[{"role": "user", "content": "Create a customer named '你好啊集团'"}],
    )
    arguments = raw.http_response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert "你好啊集团" in arguments
    assert "\\u" not in arguments


def test_tools_named_in_the_message_are_called_in_parallel(client):
    _, calls = _calls(client, "Use get_weather for 'Paris' then my_adder_tool with 1 and 2", [MAGIC, ADDER, WEATHER])
    assert calls == [("get_weather", {"location": "Paris"}), ("my_adder_tool", {"a": 1, "b": 2})]


def test_parallel_tool_calls_false_calls_one(client):
    _, calls = _calls(client, "Use get_weather and my_adder_tool", [ADDER, WEATHER], parallel_tool_calls=False)
    assert [name for name, _ in calls] == ["get_weather"]


def test_tool_names_match_whole_words_only(client):
    _, calls = _calls(client, "Call magic_function_no_args()", [MAGIC, NO_ARGS])
    assert calls == [("magic_function_no_args", {})]


def test_first_tool_when_none_is_named(client):
    _, calls = _calls(client, "Hello!", [MAGIC, WEATHER], tool_choice="required")
    assert [name for name, _ in calls] == ["magic_function"]


def test_named_tool_choice_wins(client):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    _, calls = _calls(client, "What is magic_function(3)?", [MAGIC, WEATHER], tool_choice=choice)
    assert calls == [("get_weather", {"location": "example location"})]


def test_tool_choice_none_answers_in_text(client):
    reply, calls = _calls(client, "What is magic_function(3)?", [MAGIC], tool_choice="none")
    assert calls == []
    assert reply.choices[0].message.content == "[openai/gpt-4o-mini] Reply to: What is magic_function(3)?"
    assert reply.choices[0].finish_reason == "stop"


def test_tool_call_ids_are_unique(client):
    ids = {_calls(client, "magic_function(1)", [MAGIC])[0].choices[0].message.tool_calls[0].id for _ in range(10)}
    assert len(ids) == 10


def _history(result: str = '{"result": 3}') -> list[dict]:
    return [
        {"role": "user", "content": "What is 1 + 2"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "abc123",
                    "type": "function",
                    "function": {"name": "my_adder_tool", "arguments": '{"a":1,"b":2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "abc123", "content": result},
    ]


def test_final_answer_quotes_the_tool_result(client):
    reply, calls = _calls(client, _history(), [ADDER])
    assert calls == []
    assert reply.choices[0].message.content == 'The tool returned: {"result": 3}'
    assert reply.choices[0].finish_reason == "stop"


def test_final_answer_quotes_every_parallel_result(client):
    history = [
        {"role": "user", "content": "weather in 'Oslo' and 'Rome'"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "cold"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "warm"}]},
    ]
    assert _calls(client, history, [WEATHER])[0].choices[0].message.content == "The tool returned: cold; warm"


def test_partially_answered_calls_are_called_again(client):
    history = _history()
    history[1]["tool_calls"].append(
        {"id": "def456", "type": "function", "function": {"name": "my_adder_tool", "arguments": "{}"}}
    )
    _, calls = _calls(client, history, [ADDER])
    assert calls == [("my_adder_tool", {"a": 1, "b": 2})]


def test_required_forces_a_call_after_a_tool_result(client):
    _, calls = _calls(client, _history(), [ADDER], tool_choice="required")
    assert calls == [("my_adder_tool", {"a": 1, "b": 2})]


def test_new_user_turn_after_few_shot_examples_calls_again(client):
    messages = [
        *_history(),
        {"role": "assistant", "content": "1 + 2 = 3"},
        {"role": "user", "content": "What is 3 + 4"},
    ]
    _, calls = _calls(client, messages, [ADDER], tool_choice="required")
    assert calls == [("my_adder_tool", {"a": 3, "b": 4})]


def test_agent_loop(client):
    messages: list[Any] = [{"role": "user", "content": "What is the weather in San Francisco, CA?"}]
    first = client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "It's sunny."},
    ]
    final = client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, tools=[WEATHER])
    assert final.choices[0].message.content == "The tool returned: It's sunny."
    assert final.choices[0].message.tool_calls is None
