"""The dashboard app through ASGI (no socket): the same pages over a SQL store and the in-memory store,
the token gate's redirect and cookie, and errors as 400 pages."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from openrouter_attribution import ConfigurationError, UsageLedger
from openrouter_attribution.dashboard import create_app
from openrouter_attribution.usage import MemoryUsageStore, UsageRecord

NOW = 1_796_000_000.0
RECORDS = [
    UsageRecord(record_id=f"r{i}", time=NOW - i * 3_600, user=f"app_{i % 3}", session_id=f"s{i % 2}",
                model_used=("m/a", "m/b")[i % 2], provider="P", kind=("chat", "embeddings")[i % 2],
                metadata={"tenant": ("acme", "globex", "initech")[i % 3]} if i % 4 else None,
                prompt_tokens=10 + i, completion_tokens=i, cost=Decimal("0.00000123") * i)
    for i in range(1, 40)
]  # fmt: skip
PATHS = ["/api/overview?period=all", "/api/users?period=all", "/api/users/app_1?period=all",
         "/api/dimensions/kind?period=all", "/api/dimensions/model/m%2Fa?period=all",
         "/api/reconciliation?period=all", "/api/overview?period=all&dimension=tenant",
         "/api/dimensions/tenant?period=all", "/api/dimensions/metadata.tenant/acme?period=all"]  # fmt: skip


def get(app, path: str, **kwargs) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
            return await client.get(path, **kwargs)

    return asyncio.run(fetch())


def test_a_sql_store_and_the_memory_store_answer_the_same(tmp_path):
    memory = MemoryUsageStore()
    memory.write_many(RECORDS)
    with UsageLedger(tmp_path / "usage.db", durability="committed") as ledger:
        for record in RECORDS:
            ledger.record(record)
        sql_app, memory_app = create_app(ledger), create_app(memory)
        for path in PATHS:
            sql, python = get(sql_app, path).json(), get(memory_app, path).json()
            # The memory store keeps no reconciliation state: its backlog is unknown (null), not 0.
            assert (sql["stats"].pop("unreconciled", 0), python["stats"].pop("unreconciled", None)) == (0, None)
            assert sql == python, path
    tenants = get(memory_app, "/api/dimensions/tenant?period=all").json()["tables"]["values"]
    assert sorted((row["metadata.tenant"] or "") for row in tenants) == ["", "acme", "globex", "initech"]
    overview = get(memory_app, PATHS[0]).json()
    assert overview["stats"]["requests"] == len(RECORDS)
    assert Decimal(str(overview["stats"]["cost"])) == sum(r.cost for r in RECORDS)


def test_a_token_in_the_address_becomes_a_cookie_and_leaves_the_address():
    app = create_app(MemoryUsageStore(), token="t0ken-value")
    assert get(app, "/").status_code == 401
    admitted = get(app, "/users?period=30d&token=t0ken-value")
    assert admitted.status_code == 303
    assert admitted.headers["location"] == "http://dash/users?period=30d"
    cookie = admitted.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "t0ken-value" not in cookie
    name, value = cookie.split(";")[0].split("=", 1)
    page = get(app, "/users?period=30d", headers={"Cookie": f"{name}={value}"})
    assert page.status_code == 200
    assert "t0ken-value" not in page.text
    assert get(app, "/api/users", headers={"Authorization": "Bearer t0ken-value"}).status_code == 200
    assert get(app, "/api/users", headers={"Authorization": "Bearer t0ken-valuE"}).status_code == 401


def test_bad_filters_are_400_and_unknown_pages_404():
    app = create_app(MemoryUsageStore())
    assert get(app, "/?period=fortnight").status_code == 400
    assert "metadata key" in get(app, "/api/overview?dimension=no%20such%20key!").json()["error"]
    assert get(app, "/users?format=xml").status_code == 400
    assert get(app, "/nowhere").status_code == 404


def test_an_empty_token_is_refused_at_construction():
    with pytest.raises(ConfigurationError):
        create_app(MemoryUsageStore(), token=" ")


def test_importing_the_dashboard_leaves_the_import_system_as_it_was():
    import sys

    import openrouter_attribution.dashboard.charts  # noqa: F401  (imports pygal)

    assert [type(finder).__module__ for finder in sys.meta_path if type(finder).__module__.startswith("pygal")] == []
