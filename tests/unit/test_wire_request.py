"""Request body building and OpenRouter's attribution limits, checked before anything is sent."""

from __future__ import annotations

import pytest

from openrouter_attribution import Attribution, AttributionError, ConfigurationError
from openrouter_attribution.wire.request import build_attribution_fields, build_body, check_request_fields

MESSAGES = [{"role": "user", "content": "hi"}]


def test_body_merges_params_overrides_and_attribution():
    body = build_body(
        messages=MESSAGES,
        params={"model": "m/a", "temperature": 0.1},
        overrides={"temperature": 0.7, "tools": [{"type": "function"}]},
        attribution_fields={"user": "app_1", "session_id": "s"},
        stream=True,
        extra_body={"debug": {"echo_upstream_body": True}},
    )
    assert body == {
        "model": "m/a",
        "temperature": 0.7,
        "tools": [{"type": "function"}],
        "messages": MESSAGES,
        "stream": True,
        "user": "app_1",
        "session_id": "s",
        "debug": {"echo_upstream_body": True},
    }


def test_none_override_removes_a_parameter_and_no_hidden_defaults():
    body = build_body(
        messages=MESSAGES, params={"model": "m/a", "max_tokens": 5}, overrides={"max_tokens": None},
        attribution_fields={}, stream=False,
    )  # fmt: skip
    assert body == {"model": "m/a", "messages": MESSAGES}


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        (Attribution(), {}),
        (Attribution(user="u"), {"user": "u"}),
        (Attribution(session_id="s" * 256), {"session_id": "s" * 256}),
        (Attribution(trace={"trace_id": "t"}), {"trace": {"trace_id": "t"}}),
        (Attribution(trace={}), {}),
        (Attribution(metadata={f"k{i}": "v" for i in range(16)}), {"metadata": {f"k{i}": "v" for i in range(16)}}),
        (Attribution(metadata={"k" * 64: "v" * 512}), {"metadata": {"k" * 64: "v" * 512}}),
    ],
)
def test_attribution_fields_within_limits(attribution, expected):
    assert build_attribution_fields(attribution) == expected


@pytest.mark.parametrize(
    ("attribution", "needle"),
    [
        (Attribution(session_id="s" * 257), "at most 256"),
        (Attribution(session_id=""), "empty"),
        (Attribution(session_id=42), "must be a str"),  # type: ignore[arg-type]
        (Attribution(metadata={f"k{i}": "v" for i in range(17)}), "at most 16"),
        (Attribution(metadata={"k" * 65: "v"}), "at most 64"),
        (Attribution(metadata={"k": "v" * 513}), "at most 512"),
        (Attribution(metadata={"k": 3}), "must be a string"),  # type: ignore[dict-item]
        (Attribution(trace=["x"]), "must be a mapping"),  # type: ignore[arg-type]
    ],
)
def test_attribution_fields_out_of_limits_raise(attribution, needle):
    with pytest.raises(AttributionError, match=needle) as info:
        build_attribution_fields(attribution)
    assert isinstance(info.value, ValueError)


def test_metadata_error_does_not_echo_the_value():
    with pytest.raises(AttributionError) as info:
        build_attribution_fields(Attribution(metadata={"email": "private-value-" * 40}))
    assert "private-value" not in str(info.value)


def test_unknown_request_parameter_is_named():
    check_request_fields({"temperature": 1, "provider": {}, "reasoning": {}}, where="test")
    with pytest.raises(ConfigurationError, match="temprature.*extra_body"):
        check_request_fields({"temprature": 1}, where="test")
