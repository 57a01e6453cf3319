"""Make docs/images/dashboard-*.png: one screenshot per dashboard page, over the demo's ledger.

Run by hand after changing the pages: ``.venv/bin/python -m tests.browser.screenshots [LEDGER]``.
Without LEDGER it runs the demo (``make demo``: a LangChain chain and agent on the local server) into a
temporary ledger first. Uses Debian's Chromium, as the browser tests do.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

from openrouter_attribution.dashboard import create_app
from openrouter_attribution.usage.budgets.budget import UserBudget
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Served

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
PAGES = {
    "overview": "/?period=today&dimension=tenant",
    "users": "/users?period=today",
    "user": "/users/app_alice?period=today",
    "dimensions": "/dimensions/tenant?period=today",
    "dimension": "/dimensions/tenant/acme?period=today",
    "budgets": "/budgets",
    "reconciliation": "/reconciliation?period=today",
}


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        ledger = argv[0] if argv else str(Path(folder) / "demo-usage.db")
        if not argv:
            from openrouter_attribution import demo

            with contextlib.redirect_stdout(io.StringIO()):
                demo.main(["--ledger", ledger])
        budgets = [UserBudget(max_cost="0.001", max_requests=20),
                   UserBudget(scope="metadata.tenant", max_cost="0.01", period="month")]  # fmt: skip
        served = Served(create_app(ledger, budget=budgets))
        IMAGES.mkdir(parents=True, exist_ok=True)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                for name, path in PAGES.items():
                    page.goto(served.url + path)
                    target = IMAGES / f"dashboard-{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    print(target)
                browser.close()
        finally:
            served.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
