"""Embeddings request bodies, option checks and answer parsing (float and base64), without a network."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrouter_attribution import errors
from openrouter_attribution.attribution import Attribution
from openrouter_attribution.wire.embeddings import (
    MAX_INPUTS_PER_REQUEST,
    build_embedding_bodies,
    check_embedding_options,
    decode_base64_vector,
    parse_embeddings,
)

PARAMS = {"model": "openai/text-embedding-3-small", "encoding_format": "base64"}


def _b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _answer(*embeddings, **extra):
    data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)]
    return {"id": "gen-1", "object": "list", "model": "openai/text-embedding-3-small", "data": data,
            "usage": {"prompt_tokens": 7, "total_tokens": 7, "cost": 1.4e-07}, **extra}  # fmt: skip


# -- request bodies ------------------------------------------------------------------------------------


def test_inputs_are_split_into_batches_in_order():
    texts = [f"text {i}" for i in range(5)]
    bodies = build_embedding_bodies(texts, params=PARAMS, attribution=Attribution("app_1"), batch_size=2)
    assert [body["input"] for body in bodies] == [texts[0:2], texts[2:4], texts[4:5]]
    assert all(body["user"] == "app_1" and body["model"] == PARAMS["model"] for body in bodies)


def test_attribution_fields_are_sent():
    attribution = Attribution("app_1", session_id="s-1", trace={"trace_id": "t"})
    (body,) = build_embedding_bodies(["a"], params=PARAMS, attribution=attribution, batch_size=10)
    assert body == {**PARAMS, "user": "app_1", "session_id": "s-1", "trace": {"trace_id": "t"}, "input": ["a"]}


def test_extra_body_is_sent_last():
    (body,) = build_embedding_bodies(
        ["a"], params=PARAMS, attribution=Attribution(), batch_size=1, extra_body={"encoding_format": "float"}
    )
    assert body["encoding_format"] == "float"
    assert "user" not in body


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("one string", "must be a list of strings"),
        (["ok", ""], "Text 1 to embed is an empty string"),
        (["ok", None], "Text 1 to embed is a NoneType"),
        ([b"bytes"], "Text 0 to embed is a bytes"),
    ],
)
def test_bad_inputs_are_refused(inputs, message):
    with pytest.raises(errors.InvalidInputError, match=message) as info:
        build_embedding_bodies(inputs, params=PARAMS, attribution=Attribution(), batch_size=10)
    assert isinstance(info.value, ValueError)


def test_error_messages_never_echo_the_text():
    secret = "my card is 4111 1111 1111 1111"
    with pytest.raises(errors.InvalidInputError) as info:
        build_embedding_bodies([secret, 3], params=PARAMS, attribution=Attribution(), batch_size=10)
    assert "4111" not in str(info.value)


def test_session_id_over_the_limit_is_refused():
    with pytest.raises(errors.UserIdError):
        build_embedding_bodies(["a"], params=PARAMS, attribution=Attribution(session_id="s" * 257), batch_size=1)


# -- constructor options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"dimensions": 256},
        {"dimensions": 3072, "model": "openai/text-embedding-3-large"},
        {"dimensions": 99999, "model": "someone/new-embedder"},  # unknown model: only >= 1 is checked
        {"encoding_format": "float"},
        {"batch_size": MAX_INPUTS_PER_REQUEST},
        {"batch_size": 1},
    ],
)
def test_valid_options_pass(options):
    check_embedding_options(options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dimensions": 0}, "positive integer"),
        ({"dimensions": True}, "positive integer"),
        ({"dimensions": "256"}, "positive integer"),
        ({"dimensions": 1537}, "at most 1536"),
        ({"dimensions": 512, "model": "openai/text-embedding-ada-002"}, "fixed size"),
        ({"encoding_format": "binary"}, "'float' or 'base64'"),
        ({"batch_size": 0}, "from 1 to 2048"),
        ({"batch_size": MAX_INPUTS_PER_REQUEST + 1}, "from 1 to 2048"),
        ({"batch_size": 2.5}, "from 1 to 2048"),
    ],
)
def test_impossible_options_raise_configuration_error(options, message):
    with pytest.raises(errors.ConfigurationError, match=message):
        check_embedding_options(options)


def test_the_batch_field_is_named_as_the_framework_names_it():
    with pytest.raises(errors.ConfigurationError, match="embed_batch_size"):
        check_embedding_options({"embed_batch_size": 0}, batch_field="embed_batch_size")


# -- answers ---------------------------------------------------------------------------------------------


def test_float_answer():
    result = parse_embeddings(_answer([0.5, -0.25], [1.0, 0.0]), expected=2)
    assert result.vectors == [[0.5, -0.25], [1.0, 0.0]]
    assert (result.id, result.model) == ("gen-1", "openai/text-embedding-3-small")
    assert result.usage is not None
    assert result.usage.prompt_tokens == 7
    assert result.usage.cost == Decimal("1.4E-7")


def test_integer_values_become_floats():
    result = parse_embeddings(_answer([0, 1, -1]), expected=1)
    assert result.vectors == [[0.0, 1.0, -1.0]]
    assert all(type(value) is float for value in result.vectors[0])


def test_base64_answer_is_decoded_to_the_same_floats():
    values = [0.5, -0.25, 0.125, 3.0]
    result = parse_embeddings(_answer(_b64(values), _b64(values[::-1])), expected=2)
    assert result.vectors == [values, values[::-1]]


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_base64_round_trip(values):
    assert decode_base64_vector(_b64(values)) == values


def test_vectors_come_back_in_input_order():
    body = _answer([1.0], [2.0], [3.0])
    body["data"] = [body["data"][2], body["data"][0], body["data"][1]]
    assert parse_embeddings(body, expected=3).vectors == [[1.0], [2.0], [3.0]]


def test_unknown_cost_stays_unknown():
    body = _answer([1.0])
    body["usage"] = {"prompt_tokens": 1, "total_tokens": 1}
    usage = parse_embeddings(body, expected=1).usage
    assert usage is not None
    assert usage.cost is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "list where a JSON object"),
        ({"object": "list"}, "without a data list"),
        (_answer([1.0]), "1 embeddings for 2 inputs"),
        (_answer([1.0], [1.0, 2.0]), "different sizes"),
        (_answer([1.0], []), "no embedding vector at position 1"),
        (_answer([1.0], ["x", 1.0]), "non-numeric"),
        (_answer([1.0], [True]), "non-numeric"),
        (_answer([1.0], "not base64!"), "not valid base64"),
        (_answer(_b64([1.0]), base64.b64encode(b"abc").decode()), "3 bytes"),
        ({**_answer([1.0], [2.0]), "data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]},
         "indexes do not match"),
    ],
)  # fmt: skip
def test_unknown_shapes_raise(body, message):
    with pytest.raises(errors.InvalidResponseError, match=message):
        parse_embeddings(body, expected=2)


def test_an_error_object_in_a_200_answer_raises_the_typed_error():
    body = {"id": "gen-9", "error": {"code": 502, "message": "Provider returned error", "metadata": {}}}
    with pytest.raises(errors.ProviderUnavailableError) as info:
        parse_embeddings(body, expected=1)
    assert info.value.generation_id == "gen-9"
