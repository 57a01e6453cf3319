"""Map OpenRouter error bodies and ``openai`` SDK exceptions to :mod:`openrouter_attribution.errors`.

This is the one place where errors are classified: by HTTP status and by
OpenRouter's ``error.code``, never by matching message text
(https://openrouter.ai/docs/api-reference/errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openrouter_attribution import errors

__all__ = ["error_class_for", "from_sdk_error", "parse_error_object"]

_BY_STATUS: dict[int, type[errors.APIError]] = {
    400: errors.BadRequestError,
    401: errors.AuthenticationError,
    402: errors.InsufficientCreditsError,
    403: errors.ModerationError,
    408: errors.RequestTimeoutError,
    429: errors.RateLimitError,
    502: errors.ProviderUnavailableError,
    503: errors.ProviderUnavailableError,
}


def error_class_for(status: int | None) -> type[errors.APIError]:
    """The exception class for an HTTP status or OpenRouter error code."""
    if status is None:
        return errors.APIError
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if 500 <= status < 600:
        return errors.ProviderUnavailableError
    if status == 422:
        return errors.BadRequestError
    return errors.APIError


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def parse_error_object(
    error: Any,
    *,
    status_code: int | None = None,
    retry_after: float | None = None,
    generation_id: str | None = None,
    in_stream: bool = False,
    class_status: int | None = None,
) -> errors.APIError:
    """Build the typed error for an OpenRouter ``error`` object.

    Args:
        error: The ``error`` object of an OpenRouter body (``{"code", "message", "metadata"}``),
            or a whole body that holds one under ``"error"``.
        status_code: HTTP status of the response; ``None`` for errors inside a 200 stream.
        retry_after: Seconds from the ``Retry-After`` header, when present.
        generation_id: The generation id, when known.
        in_stream: True when the error arrived in the middle of a streamed answer.
        class_status: The HTTP status whose error class a non-numeric ``code`` stands for (the Responses
            API's codes such as ``"server_error"``); the class only, ``status_code`` stays as given.
    """
    if isinstance(error, Mapping) and isinstance(error.get("error"), Mapping):
        error = error["error"]
    if not isinstance(error, Mapping):
        error = {"message": str(error) if error else "OpenRouter returned an error without details"}
    code = error.get("code")
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = "OpenRouter returned an error without a message"
    metadata = error.get("metadata")
    cls = error_class_for(status_code if status_code is not None else _as_int(code) or class_status)
    return cls(
        message,
        status_code=status_code,
        code=code,
        metadata=metadata if isinstance(metadata, Mapping) else None,
        retry_after=retry_after,
        generation_id=generation_id,
        in_stream=in_stream,
    )


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _address(err: Any) -> str:
    """``host:port`` of the request that failed (never its credentials: no userinfo, no headers)."""
    url = getattr(getattr(err, "request", None), "url", None)
    host = getattr(url, "host", None)
    if not host:
        return "the configured base_url"
    port = getattr(url, "port", None) or _DEFAULT_PORTS.get(str(getattr(url, "scheme", "")), "?")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _root_cause(err: BaseException) -> BaseException | None:
    """The innermost exception behind ``err`` (the transport's own reason), if any."""
    seen: set[int] = set()
    cause = err.__cause__ or err.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        deeper = cause.__cause__ or cause.__context__
        if deeper is None:
            return cause
        cause = deeper
    return None


def _reason(err: BaseException) -> str:
    """The transport-level reason, e.g. ``ConnectionRefusedError: [Errno 111] Connection refused``."""
    cause = _root_cause(err)
    if cause is None:
        return str(getattr(err, "message", "") or type(err).__name__)
    text = str(cause).splitlines()[0][:200] if str(cause) else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def from_sdk_error(err: BaseException) -> errors.OpenRouterError | None:
    """Translate an ``openai`` SDK exception; ``None`` when it is not one of the SDK's.

    Connection errors and timeouts name the host and port that were tried (from the request URL,
    without credentials) and the transport's reason; never the API key.
    """
    import openai

    # Some transports report a refused connection as a connect timeout; the cause's type tells.
    refused = isinstance(_root_cause(err), OSError) and not isinstance(_root_cause(err), TimeoutError)
    if isinstance(err, openai.APITimeoutError) and not refused:
        return errors.APITimeoutError(
            f"The request to {_address(err)} timed out on the client side; raise timeout= if the model "
            "needs longer to answer."
        )
    if isinstance(err, openai.APIConnectionError):
        return errors.APIConnectionError(
            f"Could not reach OpenRouter at {_address(err)} ({_reason(err)}). Check base_url and the network."
        )
    if isinstance(err, openai.APIStatusError):
        headers = err.response.headers
        body = err.body
        if not isinstance(body, Mapping):
            body = {"code": err.status_code, "message": err.message}
        return parse_error_object(
            body,
            status_code=err.status_code,
            retry_after=_retry_after(headers),
            generation_id=headers.get("x-generation-id"),
        )
    if isinstance(err, openai.APIResponseValidationError):
        return errors.InvalidResponseError(f"OpenRouter sent a response that could not be read: {err.message}")
    if isinstance(err, openai.APIError):
        # Raised by the SDK for an `error` event inside a 200 stream.
        return parse_error_object(err.body, in_stream=True)
    return None
