"""A ready-made ``on_alert``: POST each budget alert as JSON to a URL, signed with HMAC-SHA-256.

``webhook(url, secret=...)`` returns a callable for ``UserBudget(on_alert=...)``. Each alert is sent as the
JSON of :meth:`~openrouter_attribution.usage.budgets.alerts.BudgetAlert.to_json` with the header
``X-OpenRouter-Attribution-Signature: sha256=<hex>``, the HMAC-SHA-256 of the raw body under ``secret``:
the receiver recomputes it over the bytes it received and compares with :func:`hmac.compare_digest`. A
connection error or a 5xx / 429 answer is retried with exponential backoff; a 4xx is not (the request
would fail again). It runs on the alerts thread, never on a model call's. The secret is never shown in
``repr``, logs or errors (nor the URL's path and query, which some receivers use as a token). Uses only
the standard library (``urllib``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

from openrouter_attribution.errors import ConfigurationError

if TYPE_CHECKING:
    from openrouter_attribution.usage.budgets.alerts import BudgetAlert

__all__ = ["SIGNATURE_HEADER", "Webhook", "WebhookError", "sign", "webhook"]

SIGNATURE_HEADER = "X-OpenRouter-Attribution-Signature"
"""The header carrying ``sha256=<hex>``: the HMAC-SHA-256 of the raw body under the webhook's secret."""


def sign(body: bytes, secret: str | bytes) -> str:
    """The signature header's value for ``body``: ``"sha256=" + hex HMAC-SHA-256`` under ``secret``.

    Examples:
        >>> sign(b'{}', "s3cret")[:14]
        'sha256=adbde1c'
    """
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class WebhookError(Exception):
    """The alert could not be delivered (after the retries); its message names the URL's host and the status."""


class Webhook:
    """The callable :func:`webhook` returns (its ``repr`` shows the URL, never the secret)."""

    __slots__ = ("_secret", "backoff", "retries", "timeout", "url")

    def __init__(self, url: str, secret: str | bytes, timeout: float, retries: int, backoff: float) -> None:
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def __repr__(self) -> str:  # the host only: a receiver's path or query may hold a token too
        return f"webhook({_host(self.url)!r}, secret=***, timeout={self.timeout}, retries={self.retries})"

    def __call__(self, alert: BudgetAlert) -> None:
        """POST ``alert``; retries connection errors, 429 and 5xx answers.

        Raises:
            WebhookError: still failing after the retries, or a 4xx answer.
        """
        body = json.dumps(alert.to_json(), separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, self._secret)}
        host = _host(self.url)
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                return
            except urllib.error.HTTPError as err:
                failure = f"HTTP {err.code}"
                if err.code < 500 and err.code != 429:
                    raise WebhookError(f"budget alert webhook to {host} answered {failure}") from None
            except (urllib.error.URLError, OSError) as err:
                failure = type(err).__name__
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise WebhookError(f"budget alert webhook to {host} failed after {self.retries + 1} attempt(s): {failure}")


def webhook(url: str, *, secret: str | bytes, timeout: float = 10.0, retries: int = 3, backoff: float = 0.5) -> Webhook:
    """An ``on_alert`` that POSTs each alert as signed JSON to ``url`` (see the module docstring).

    Args:
        url: ``http://`` or ``https://`` URL of the receiver.
        secret: The HMAC key the receiver shares (never shown in repr, logs or errors).
        timeout: Seconds per attempt.
        retries: Attempts after the first, for connection errors, 429 and 5xx answers.
        backoff: Seconds before the first retry, doubled before each next one.

    Raises:
        ConfigurationError: the URL is not http(s), the secret is empty, or a number is out of range.

    Examples:
        >>> from decimal import Decimal
        >>> from openrouter_attribution import UserBudget
        >>> alert = webhook("https://example.com/hooks/budget", secret="s3cret")
        >>> budget = UserBudget(max_cost=Decimal("5"), alerts=(0.8, 1.0), on_alert=alert)
        >>> alert
        webhook('https://example.com', secret=***, timeout=10.0, retries=3)
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigurationError("webhook url must start with http:// or https://")
    if not secret or not isinstance(secret, (str, bytes)):
        raise ConfigurationError("webhook secret must be a non-empty str or bytes")
    if not (timeout > 0 and isinstance(retries, int) and retries >= 0 and backoff >= 0):
        raise ConfigurationError("webhook needs timeout > 0, retries >= 0 (a whole number) and backoff >= 0")
    return Webhook(url, secret, float(timeout), retries, float(backoff))
