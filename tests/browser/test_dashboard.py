"""The dashboard in Chromium: the numbers of `report`, a user's calls, escaping, the token, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal
from urllib.parse import quote

import pytest

from openrouter_attribution import UsageLedger, UserBudget, user_context
from openrouter_attribution.dashboard import create_app
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.usage.budgets.alerts import BudgetAlert, wait_for_alerts
from tests.browser.conftest import CALLS, HOSTILE, Served, screenshot

TOKEN = "dashboard-secret-Zq81"


def report(ledger_path: str, *args: str) -> list[dict]:
    """What `openrouter-attribution report --format json` prints (run as a command)."""
    out = subprocess.run([sys.executable, "-m", "openrouter_attribution.cli", "report", "--db", ledger_path,
                          "--format", "json", *args], capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout, parse_float=Decimal)


def stat(page, key: str) -> str:
    return page.locator(f"[data-stat={key}] strong").inner_text()


def test_the_overview_shows_the_totals_of_report(page, dashboard, ledger_path):
    rows = report(ledger_path)
    page.goto(dashboard.url + "/?period=all")
    screenshot(page, "overview")
    assert stat(page, "requests") == f"{sum(r['requests'] for r in rows):,}" == f"{sum(CALLS.values())}"
    assert stat(page, "cost") == f"${sum(r['cost'] for r in rows):,.8f}"
    assert stat(page, "tokens") == f"{sum(r['prompt_tokens'] + r['completion_tokens'] for r in rows):,}"
    assert stat(page, "users") == str(len(rows))
    top = page.locator("table[data-table=top_users] tbody tr")
    assert [top.nth(i).locator("td").first.inner_text() for i in range(top.count())] == [r["user"] for r in rows]
    assert page.locator("section.chart svg").count() == 1
    api = page.request.get(dashboard.url + "/api/overview?period=all")
    data = json.loads(api.text(), parse_float=Decimal)
    assert data["stats"]["cost"] == sum(r["cost"] for r in rows)
    assert [(r["user"], r["cost"]) for r in data["tables"]["top_users"]] == [(r["user"], r["cost"]) for r in rows]
    assert data["tables"]["models"][0]["model"] == report(ledger_path, "--by", "model")[0]["model"]


def test_a_users_page_shows_their_calls(page, dashboard):
    page.goto(dashboard.url + "/?period=all")
    page.locator("table[data-table=top_users]").get_by_role("link", name="app_alice", exact=True).click()
    page.wait_for_url("**/users/app_alice*")
    screenshot(page, "user")
    assert page.locator("h1").inner_text() == "User app_alice"
    calls = page.locator("table[data-table=recent] tbody tr")
    assert calls.count() == CALLS["app_alice"]
    assert {calls.nth(i).locator("td").nth(1).inner_text() for i in range(calls.count())} == {"app_alice"}
    assert page.locator("table[data-table=sessions] tbody td").first.inner_text() == "app_alice-chat"
    assert stat(page, "requests") == str(CALLS["app_alice"])


def test_a_hostile_user_id_is_shown_as_text(page, dashboard):
    page.goto(dashboard.url + "/users?period=all")
    screenshot(page, "users")
    page.get_by_role("link", name=HOSTILE, exact=True).click()
    page.wait_for_url("**/users/*")
    screenshot(page, "user-hostile")
    assert page.locator("h1").inner_text() == f"User {HOSTILE}"
    assert page.url.startswith(f"{dashboard.url}/users/{quote(HOSTILE, safe='')}")
    assert page.locator("script").count() == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content()
    # the page fixture fails the test if an alert() dialog opened


def test_every_page_answers_html_json_and_csv(page, dashboard):
    paths = {"overview": "/", "users": "/users", "user-bob": "/users/app_bob", "dimensions": "/dimensions/model",
             "dimension-value": "/dimensions/model/" + quote("openai/gpt-4o-mini", safe=""), "budgets": "/budgets",
             "reconciliation": "/reconciliation"}  # fmt: skip
    for name, path in paths.items():
        response = page.goto(f"{dashboard.url}{path}?period=30d")
        assert response.status == 200, path
        screenshot(page, f"page-{name}")
        as_json = page.request.get(f"{dashboard.url}{path}?period=30d", headers={"Accept": "application/json"})
        api = page.request.get(f"{dashboard.url}/api{path if path != '/' else '/overview'}?period=30d")
        assert as_json.json() == api.json()
        assert set(api.json()["tables"]) == {t.get_attribute("data-table") for t in page.locator("table").all()} | {
            n for n, rows in api.json()["tables"].items() if not rows
        }
    page.goto(dashboard.url + "/?period=all")
    with page.expect_download() as download:
        page.locator("#models a.csv").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    assert [(r["model"], int(r["requests"])) for r in rows] == [("openai/gpt-4o-mini", sum(CALLS.values()))]


def test_a_bad_filter_is_a_400_not_a_trace(page, dashboard):
    assert page.goto(dashboard.url + "/?since=yesterday-ish").status == 400
    assert "cannot read" in page.locator(".note").inner_text()
    assert page.request.get(dashboard.url + "/api/dimensions/no%20such%20key!").status == 400


@pytest.fixture(scope="module")
def guarded(ledger_path):
    served = Served(create_app(ledger_path, token=TOKEN))
    yield served
    served.stop()


def test_the_token_is_required_and_never_echoed(page, guarded):
    assert page.goto(guarded.url + "/users").status == 401
    screenshot(page, "token-form")
    assert page.request.get(guarded.url + "/api/overview").status == 401
    assert page.request.get(guarded.url + "/api/overview", headers={"Authorization": "Bearer wrong"}).status == 401
    assert page.request.get(guarded.url + "/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}).ok
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(guarded.url + "/users")  # redirected without the token in the address
    assert page.locator("h1").inner_text() == "Users"
    cookie = next(c for c in page.context.cookies() if c["name"] == "openrouter_attribution_dashboard")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert TOKEN not in page.content()
    assert page.goto(guarded.url + "/?period=all").status == 200  # the cookie opens every page
    page.context.clear_cookies()
    assert page.goto(guarded.url + f"/?token=wrong{TOKEN}").status == 401


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory, fake_openrouter_session):
    """A ledger where app_dora reached 80% of her budget of 5 requests and her alert fired, and tenant acme
    (two users) spent under its own budget; served with both budgets."""
    server = fake_openrouter_session
    path = str(tmp_path_factory.mktemp("budgeted") / "usage.db")
    fired: list[BudgetAlert] = []
    user_budget = UserBudget(max_requests=5, period="day", alerts=(0.5, 0.8), on_alert=fired.append)
    tenant_budget = UserBudget(scope="metadata.tenant", max_requests=100, period="month")
    with UsageLedger(path) as ledger:
        model = ChatOpenRouter(model="openai/gpt-4o-mini", base_url=server.base_url, api_key=server.api_key,
                               ledger=ledger, budget=[user_budget, tenant_budget], max_retries=0)  # fmt: skip
        for user, calls in (("app_dora", 4), ("app_eve", 1)):
            with user_context(user, metadata={"tenant": "acme"}):
                for i in range(calls):
                    model.invoke(f"Question {i}")
        assert wait_for_alerts(30)
    assert [(a.key, a.fraction) for a in fired] == [("app_dora", 0.5), ("app_dora", 0.8)]
    served = Served(create_app(path, budget=[user_budget, tenant_budget]))
    yield served
    served.stop()


def test_the_budget_page_shows_a_user_at_80_percent_after_the_alert_fired(page, budgeted):
    assert page.goto(budgeted.url + "/budgets").status == 200
    screenshot(page, "budgets-alerts")
    users = page.locator("[data-table=budgets] tbody tr")
    assert users.first.locator("td").nth(0).inner_text() == "app_dora"
    assert "80.0" in users.first.inner_text()
    tenants = page.locator("[data-table=budgets_2] tbody tr")
    assert tenants.count() == 1
    assert tenants.first.locator("td").nth(0).inner_text() == "acme"
    assert "5.0" in tenants.first.inner_text()  # 5 of 100 requests
    alerts = page.locator("[data-table=alerts] tbody tr")
    assert [row.locator("td").nth(2).inner_text() for row in alerts.all()] == ["app_dora", "app_dora"]
    assert "80.0" in alerts.first.inner_text()  # newest first
    data = page.request.get(budgeted.url + "/api/budgets").json()
    assert [(a["key"], a["percent"]) for a in data["tables"]["alerts"]] == [("app_dora", 80.0),
                                                                                    ("app_dora", 50.0)]  # fmt: skip
