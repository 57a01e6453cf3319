"""The signed webhook ``on_alert`` against a real HTTP server on 127.0.0.1: signature, retries, no secret shown."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openrouter_attribution import ConfigurationError, UsageLedger, UserBudget
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.usage import BudgetAlert
from openrouter_attribution.usage.budgets.alerts import wait_for_alerts
from openrouter_attribution.usage.budgets.webhook import SIGNATURE_HEADER, WebhookError, webhook

SECRET = "whsec_do-not-show-me"


class Receiver:
    """A local HTTP server answering each POST with the next status of ``statuses`` (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[bytes, str | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((body, self.headers.get(SIGNATURE_HEADER)))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/budget?token=path-secret"


@pytest.fixture
def receiver(request) -> Iterator[Receiver]:
    found = Receiver(list(getattr(request, "param", [])))
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def alert() -> BudgetAlert:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    return BudgetAlert(scope="metadata.tenant", key="acme", kind="requests", fraction=0.8, spent=8, limit=10,
                       period="day", window_start=now.replace(hour=0), resets_at=None, fired_at=now)  # fmt: skip


def expected_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("receiver", [[500]], indirect=True)
def test_the_alert_is_posted_signed_and_retried_after_a_500(receiver):
    webhook(receiver.url, secret=SECRET, backoff=0.01)(alert())
    (first, _), (body, signature) = receiver.received
    assert first == body  # the retry sends the same bytes
    assert signature == expected_signature(body)
    assert json.loads(body) == {
        "scope": "metadata.tenant", "key": "acme", "kind": "requests", "fraction": 0.8, "spent": 8, "limit": 10,
        "period": "day", "window_start": "2026-12-07T00:00:00+00:00", "resets_at": None,
        "fired_at": "2026-12-07T12:00:00+00:00",
    }  # fmt: skip


@pytest.mark.parametrize("receiver", [[403, 500, 500]], indirect=True)
def test_a_4xx_is_not_retried_and_no_error_or_repr_shows_a_secret(receiver):
    hook = webhook(receiver.url, secret=SECRET, backoff=0.01, retries=1)
    with pytest.raises(WebhookError) as refused:
        hook(alert())
    assert len(receiver.received) == 1
    with pytest.raises(WebhookError) as failed:  # 500, then 500 again: out of retries
        hook(alert())
    assert len(receiver.received) == 3
    for shown in (str(refused.value), str(failed.value), repr(hook)):
        assert SECRET not in shown
        assert "path-secret" not in shown
    assert "403" in str(refused.value)


def test_webhook_checks_its_settings():
    for kwargs in ({"secret": ""}, {"secret": SECRET, "retries": -1}, {"secret": SECRET, "timeout": 0}):
        with pytest.raises(ConfigurationError):
            webhook("https://example.com/hook", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        webhook("ftp://example.com/hook", secret=SECRET)


def test_a_budget_alert_reaches_the_webhook(receiver, fake_openrouter, tmp_path):
    budget = UserBudget(max_requests=2, alerts=(0.5,), on_alert=webhook(receiver.url, secret=SECRET))
    with UsageLedger(tmp_path / "usage.db") as ledger:
        model = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=fake_openrouter.base_url,
                               api_key=fake_openrouter.api_key, ledger=ledger, budget=budget)  # fmt: skip
        model.invoke("Hello", user="app_1")
        assert wait_for_alerts(60)
    ((body, signature),) = receiver.received
    assert signature == expected_signature(body)
    assert (json.loads(body)["key"], json.loads(body)["spent"]) == ("app_1", 1)
