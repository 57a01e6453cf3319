"""Classification of OpenRouter error objects by status and code."""

from __future__ import annotations

import pickle

import pytest

from openrouter_attribution import errors
from openrouter_attribution.wire.errors import error_class_for, parse_error_object


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (402, errors.InsufficientCreditsError),
        (403, errors.ModerationError),
        (408, errors.RequestTimeoutError),
        (429, errors.RateLimitError),
        (502, errors.ProviderUnavailableError),
        (503, errors.ProviderUnavailableError),
        (500, errors.ProviderUnavailableError),
        (418, errors.APIError),
        (None, errors.APIError),
    ],
)
def test_status_to_class(status, cls):
    assert error_class_for(status) is cls


def test_error_object_fields_and_moderation_reasons():
    err = parse_error_object(
        {"error": {"code": 403, "message": "flagged", "metadata": {"reasons": ["violence"], "flagged_input": "x"}}},
        status_code=403,
        retry_after=None,
    )
    assert isinstance(err, errors.ModerationError)
    assert (err.status_code, err.code, err.message) == (403, 403, "flagged")
    assert err.reasons == ["violence"]


def test_code_classifies_when_there_is_no_status():
    err = parse_error_object({"code": "429", "message": "m"}, in_stream=True)
    assert isinstance(err, errors.RateLimitError)
    assert err.status_code is None
    assert err.in_stream


def test_missing_message_gets_a_clear_default():
    err = parse_error_object({"code": 500})
    assert "without a message" in err.message


def test_api_errors_pickle_with_their_fields():
    err = parse_error_object({"code": 429, "message": "m"}, status_code=429, retry_after=2.0)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is errors.RateLimitError
    assert (copy.status_code, copy.retry_after, copy.message) == (429, 2.0, "m")


def test_bad_request_is_a_value_error():
    assert issubclass(errors.BadRequestError, ValueError)
    assert issubclass(errors.UserIdError, ValueError)
    assert issubclass(errors.MissingUserError, errors.UserIdError)
