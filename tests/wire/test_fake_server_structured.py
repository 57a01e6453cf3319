"""Structured output: json_schema answers validate against the schema; json_object answers are objects."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_tests.integration_tests.chat_models import _get_joke_class
from pydantic import BaseModel, Field

from openrouter_attribution.testing.schema_values import Hints, generate_value


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    zip_code: str = Field(min_length=5, max_length=5)


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=130)
    height: float = Field(gt=0)
    favourite: Color
    tier: Literal["free", "pro"]
    tags: list[str] = Field(min_length=2)
    home: Address
    previous: list[Address] = []
    nickname: str | None = None
    children: list[Person] = []


SCHEMAS = [
    pytest.param(convert_to_json_schema(_get_joke_class(kind)[0]), id=f"standard-suite-joke-{kind}")
    for kind in ("pydantic", "typeddict", "json_schema")
] + [
    pytest.param(Person.model_json_schema(), id="pydantic-defs-refs-enums-bounds-recursion"),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "prefixItems": [{"type": "integer"}, {"type": "string"}],
                    "items": False,
                },
                "when": {"type": "string", "format": "date-time"},
                "id": {"type": "string", "format": "uuid"},
                "mixed": {
                    "allOf": [
                        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                        {"properties": {"b": {"const": "fixed"}}, "required": ["b"]},
                    ]
                },
            },
            "required": ["items", "when", "id", "mixed"],
            "additionalProperties": False,
        },
        id="prefix-items-formats-allof",
    ),
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_answer_validates(client, schema, stream):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    kwargs: dict[str, Any] = {
        "model": "openai/gpt-4o-mini",
        "response_format": response_format,
        "messages": [{"role": "user", "content": "Tell me a joke about cats"}],
    }
    if stream:
        chunks = list(client.chat.completions.create(**kwargs, stream=True))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        content = client.chat.completions.create(**kwargs).choices[0].message.content
    document = json.loads(content)
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())


def test_json_schema_uses_quoted_text_and_numbers(client):
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["title", "year"],
    }
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Describe 'Dune' from 1965"}],
        response_format={"type": "json_schema", "json_schema": {"name": "book", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content) == {"title": "Dune", "year": 1965}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Tell me a joke about cats. Return the result as a JSON with 'setup' and 'punchline' keys.",
            {"setup": "example setup", "punchline": "example punchline"},
        ),
        ("Answer in JSON", {"answer": "[openai/gpt-4o-mini] Reply to: Answer in JSON"}),
    ],
)
def test_json_object_answer(client, text, expected):
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        response_format={"type": "json_object"},
    )
    assert json.loads(reply.choices[0].message.content) == expected


_leaf = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"enum": ["a", 1, None]},
        {"type": "integer", "minimum": 5, "maximum": 9},
        {"type": "number", "exclusiveMaximum": 0},
        {"type": "string", "minLength": 3, "maxLength": 4},
        {"type": ["null", "integer"]},
        {"const": {"k": [1]}},
        {"type": "string", "format": "email"},
    ]
)
_schemas = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.builds(
            lambda props: {"type": "object", "properties": props, "required": sorted(props)},
            st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6), children, max_size=4),
        ),
        st.builds(lambda item, n: {"type": "array", "items": item, "minItems": n}, children, st.integers(0, 2)),
        st.builds(lambda options: {"anyOf": options}, st.lists(children, min_size=1, max_size=3)),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(schema=_schemas, text=st.text(max_size=60))
def test_generated_values_always_validate(schema, text):
    value = generate_value(schema, Hints.from_text(text))
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
