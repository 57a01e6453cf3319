"""The dashboard in a real browser: uvicorn on 127.0.0.1 over a ledger filled by real model calls (through
the local OpenRouter-compatible server), driven by Playwright with Debian's Chromium.

Nothing is downloaded: the browser is ``/usr/bin/chromium`` (``make test`` installs it with apt when it is
missing; never ``playwright install``). Without it the tests skip with a one-line reason, except when
``CI=true``: then they fail. Screenshots of every page visited go to ``build/browser-screenshots/``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openrouter_attribution import UsageLedger, user_context
from openrouter_attribution.dashboard import create_app
from openrouter_attribution.langchain import ChatOpenRouter

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "browser-screenshots"
HOSTILE = "<script>alert(1)</script>"
CALLS = {"app_alice": 3, "app_bob": 2, HOSTILE: 1}
"""The end-users of the ledger and how many calls each made."""


@pytest.fixture(scope="session")
def ledger_path(tmp_path_factory: pytest.TempPathFactory, fake_openrouter_session: Any) -> str:
    """A ledger written by real LangChain calls over HTTP to the local server, one session per user."""
    path = str(tmp_path_factory.mktemp("dashboard") / "usage.db")
    server = fake_openrouter_session
    with UsageLedger(path) as ledger:
        model = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=server.base_url, api_key=server.api_key,
                               ledger=ledger, max_retries=0)  # fmt: skip
        for user, calls in CALLS.items():
            with user_context(user, session_id=f"{user}-chat"):
                for i in range(calls):
                    model.invoke(f"Question {i} from a user")
    return path


class Served:
    """A uvicorn server of one app on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def dashboard(ledger_path: str) -> Iterator[Served]:
    """The dashboard without a token."""
    served = Served(create_app(ledger_path))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, for one test module: Playwright's sync API keeps an event loop running in this thread
    while it is open, and the tests that follow call asyncio.run()."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {CHROMIUM} is missing (make test installs it with apt)", pytrace=False)
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; a dialog (``alert``) fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()
    assert dialogs == [], f"a script ran in the dashboard: {dialogs}"


def screenshot(page: Any, name: str) -> None:
    """Save the whole page as build/browser-screenshots/NAME.png (a test artifact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
