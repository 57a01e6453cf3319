"""The one exception tree of openrouter-attribution.

Every error the library raises derives from :class:`OpenRouterError`. Errors
that describe bad input also derive from :class:`ValueError`, so code written
against plain Python conventions keeps working. Messages say what to change
and never contain the API key, the hashing key or a raw end-user id.

The framework adapters raise subclasses of these that also derive from the
framework's own exception classes where one exists (for example LangChain's
``OutputParserException``), so callers can catch either.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigurationError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "InvalidResponseError",
    "MissingUserError",
    "MissingUserWarning",
    "ModerationError",
    "OpenRouterError",
    "ProviderUnavailableError",
    "RateLimitError",
    "RequestTimeoutError",
    "TruncatedStreamError",
    "UserIdError",
    "AttributionError",
]


class OpenRouterError(Exception):
    """Base class of every error raised by openrouter-attribution."""

    usage_record_id: str | None = None
    """The ``record_id`` of the usage record the failed call was written under (set by a model with
    ``ledger=``), so that usage handlers observing the same error keep one record, not two."""


class ConfigurationError(OpenRouterError, ValueError):
    """A model or client was configured with values that cannot work.

    Raised at construction time, never deferred to the first call.
    """


class AttributionError(OpenRouterError, ValueError):
    """An attribution field (``session_id``, ``trace``, ``metadata``) is invalid.

    Raised before any network I/O, for example for ``metadata`` with more than
    16 pairs or a value over 512 characters (OpenRouter's limits).
    """


class InvalidInputError(OpenRouterError, ValueError):
    """The input of a call cannot be sent as it is (for example an empty text to embed).

    Raised before any network I/O. The message names the position and the type of the
    offending input, never its content.
    """


class UserIdError(AttributionError):
    """An end-user id is invalid or carries personal data the policy rejects.

    The message names the rule that failed, never the raw id.
    """

    def __init__(self, message: str, *, rule: str = "invalid") -> None:
        super().__init__(message)
        self.rule = rule
        """Short name of the failed rule, e.g. ``"empty"``, ``"too_long"``, ``"email"``."""


class MissingUserError(UserIdError):
    """No end-user could be resolved for a call while a user is required.

    Raised before any network I/O when ``require_user=True``.
    """

    def __init__(self, message: str, *, searched: tuple[str, ...] = ()) -> None:
        super().__init__(message, rule="missing")
        self.searched = searched
        """The places the library looked for a user, in resolution order."""


class BudgetExceededError(OpenRouterError):
    """A call would take its end-user over their :class:`~openrouter_attribution.UserBudget`.

    Raised before any network I/O: the request is not sent and no usage record is written. The
    attributes say which budget (``scope`` and ``key``: the user's own, or e.g. their tenant's), which
    limit, how much of it is used, and when the window resets; ``user`` is the id as it would have been
    sent (after the identity policy), never a raw id.
    """

    def __init__(
        self,
        message: str,
        *,
        user: str | None,
        limit: Decimal | int,
        spent: Decimal | int,
        reserved: Decimal | int,
        requested: Decimal | int,
        kind: str,
        period: str,
        resets_at: datetime | None,
        scope: str = "user",
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.user = user
        """The end-user id of the call as sent (after the identity policy); ``None`` without one."""
        self.scope = scope
        """The scope of the budget that refused the call: ``"user"`` or ``"metadata.<key>"``."""
        self.key = user if scope == "user" and key is None else key
        """The budget's key as sent: the user id for ``scope="user"``, else the call's metadata value
        (e.g. the tenant); ``None`` for the shared budget of calls without one."""
        self.kind = kind
        """Which limit: ``"cost"`` (``max_cost``, USD) or ``"requests"`` (``max_requests``)."""
        self.limit = limit
        """The limit of the window: USD for ``"cost"``, a count for ``"requests"``."""
        self.spent = spent
        """Used in the window by calls that ended (their usage records): USD or requests."""
        self.reserved = reserved
        """Held by calls of this user still in flight (USD or requests)."""
        self.requested = requested
        """What this call would have held: its reserve (USD) or 1 (requests)."""
        self.period = period
        """The budget period: ``"day"``, ``"week"``, ``"month"`` or ``"total"``."""
        self.resets_at = resets_at
        """When the window resets (UTC, timezone-aware); ``None`` for ``period="total"``."""

    def __reduce__(self) -> tuple[Any, ...]:
        names = ("user", "limit", "spent", "reserved", "requested", "kind", "period", "resets_at", "scope", "key")
        state = {name: getattr(self, name) for name in names}
        return (_rebuild_budget_error, (str(self), state))


def _rebuild_budget_error(message: str, state: dict[str, Any]) -> BudgetExceededError:
    return BudgetExceededError(message, **state)


class APIError(OpenRouterError):
    """OpenRouter (or the network in front of it) answered with an error.

    Attributes mirror OpenRouter's error body
    ``{"error": {"code": int, "message": str, "metadata": {...}}}``.
    """

    status_code: int | None
    """HTTP status of the response, ``None`` for errors that arrived inside a 200 stream."""
    code: int | str | None
    """OpenRouter's ``error.code`` (usually equal to the HTTP status)."""
    message: str
    """OpenRouter's ``error.message``."""
    metadata: Mapping[str, Any]
    """OpenRouter's ``error.metadata`` (for moderation: ``reasons``, ``flagged_input``, ...)."""
    retry_after: float | None
    """Seconds to wait before retrying, from the ``Retry-After`` header, when present."""
    generation_id: str | None
    """Generation id of the failed request, when OpenRouter sent one."""
    in_stream: bool
    """True when the error arrived as an event in the middle of a streamed answer."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: int | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        generation_id: str | None = None,
        in_stream: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.metadata = dict(metadata or {})
        self.retry_after = retry_after
        self.generation_id = generation_id
        self.in_stream = in_stream

    def __str__(self) -> str:
        where = " (mid-stream)" if self.in_stream else ""
        status = self.status_code if self.status_code is not None else self.code
        return f"OpenRouter error {status}{where}: {self.message}" if status is not None else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_api_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_api_error(cls: type[APIError], message: str, state: dict[str, Any]) -> APIError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class BadRequestError(APIError, ValueError):
    """400: OpenRouter rejected the request body (invalid field, unknown model, ...)."""


class AuthenticationError(APIError):
    """401: the API key is missing, invalid or disabled."""


class InsufficientCreditsError(APIError):
    """402: the account or key has no credits left. Not retried."""


class ModerationError(APIError):
    """403: the input was flagged by moderation or a guardrail.

    ``metadata`` carries ``reasons``, ``flagged_input`` and ``provider_name``.
    """

    @property
    def reasons(self) -> list[str]:
        """Why the input was flagged, as OpenRouter reported it."""
        return list(self.metadata.get("reasons") or [])


class RequestTimeoutError(APIError):
    """408: OpenRouter timed the request out."""


class RateLimitError(APIError):
    """429: rate limited; ``retry_after`` says how long to wait when known."""


class ProviderUnavailableError(APIError):
    """502 / 503: the model is down or no provider meets the routing requirements."""


class InvalidResponseError(APIError):
    """The response could not be understood (malformed JSON or SSE chunk, empty body, unknown shape)."""


class TruncatedStreamError(InvalidResponseError):
    """A streamed answer stopped before its end: no ``data: [DONE]`` and no ``finish_reason`` with usage.

    Raised after every chunk that did arrive has been delivered, so a consumer keeps the partial
    answer and learns that it is partial; ``in_stream`` is ``True``. Usually a proxy or the network
    closed the connection cleanly in the middle of a generation.
    """

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("in_stream", True)
        super().__init__(message, **kwargs)


class APIConnectionError(APIError):
    """The connection to OpenRouter failed or was dropped."""


class APITimeoutError(APIConnectionError):
    """The client-side timeout expired before OpenRouter answered."""


class MissingUserWarning(UserWarning):
    """A call went out without an end-user id while the model has ``require_user="warn"`` (the default).

    Emitted with :func:`warnings.warn` once per call site (the first frame outside this library and
    the frameworks), so the warning points at the line to fix. Pass a user (``user=``, the run
    config, :func:`~openrouter_attribution.user_context`), set ``require_user=False`` on the model to
    allow unattributed calls, or ``require_user=True`` to refuse them; ``warnings.filterwarnings``
    works as usual (``"error"`` turns it into an exception, ``"ignore"`` silences it).
    """


class UsageStoreWarning(UserWarning):
    """A usage ledger's store could not be reached when the ledger was created.

    Issued once, by :class:`~openrouter_attribution.UsageLedger`, for a PostgreSQL ledger whose server
    does not answer (a wrong host, port, password or database). Calls go on: their records wait in the
    journal and the spool and are committed once the store answers. The message never holds the password.
    """
