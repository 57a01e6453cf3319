"""The local server's key management API: what OpenRouter's /keys and /external-users do, validated alike."""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

PARTNER_KEY = "sk-or-v1-" + "ab" * 32


def _call(server, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    headers = {"Authorization": f"Bearer {key or server.management_key}", "Content-Type": "application/json"}
    conn.request(method, f"/api/v1{path}", None if body is None else json.dumps(body), headers)
    response = conn.getresponse()
    payload = json.loads(response.read() or b"null")
    conn.close()
    return response.status, payload


def _chat(server, key: str) -> tuple[int, Any]:
    return _call(server, "POST", "/chat/completions",
                 {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, key)  # fmt: skip


def _create(server, **body) -> dict[str, Any]:
    status, payload = _call(server, "POST", "/keys", {"name": "user:u1", **body})
    assert status == 201, payload
    return payload


def test_a_created_key_calls_models_and_meters_its_spend(fake_openrouter):
    created = _create(fake_openrouter, external={"user": "u1", "api_key": PARTNER_KEY}, limit=1.5, limit_reset="daily")
    assert created["key"] == PARTNER_KEY
    assert created["data"]["external_user"] == "u1"
    assert created["data"]["limit"] == 1.5
    status, answer = _chat(fake_openrouter, PARTNER_KEY)
    assert status == 200
    status, described = _call(fake_openrouter, "GET", f"/keys/{created['data']['hash']}")
    assert status == 200
    assert described["data"]["usage"] == pytest.approx(answer["usage"]["cost"])
    assert described["data"]["limit_remaining"] == pytest.approx(1.5 - answer["usage"]["cost"])
    status, own = _call(fake_openrouter, "GET", "/key", key=PARTNER_KEY)
    assert (status, own["data"]["usage_daily"]) == (200, described["data"]["usage_daily"])


def test_the_same_partner_key_twice_is_a_conflict(fake_openrouter):
    _create(fake_openrouter, external={"user": "u1", "api_key": PARTNER_KEY})
    status, payload = _call(
        fake_openrouter, "POST", "/keys", {"name": "user:u1", "external": {"user": "u1", "api_key": PARTNER_KEY}}
    )
    assert status == 409
    assert payload["error"]["code"] == 409
    assert len(fake_openrouter.created_keys()) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [({}, "'name'"), ({"name": 3}, "'name'"), ({"name": "k", "limit": "five"}, "'limit'"),
     ({"name": "k", "limit_reset": 7}, "'limit_reset'"), ({"name": "k", "external": {"api_key": PARTNER_KEY}},
     "'external.user'"), ({"name": "k", "external": {"user": "u", "api_key": "short"}}, "at least 32")],
)  # fmt: skip
def test_bad_key_bodies_are_400_naming_the_field(fake_openrouter, body, fragment):
    status, payload = _call(fake_openrouter, "POST", "/keys", body)
    assert status == 400
    assert fragment in payload["error"]["message"]
    assert fake_openrouter.created_keys() == []


def test_a_management_key_cannot_call_models_and_an_api_key_cannot_manage(fake_openrouter):
    status, payload = _chat(fake_openrouter, fake_openrouter.management_key)
    assert status == 401
    assert "Management keys cannot call models" in payload["error"]["message"]
    status, _ = _call(fake_openrouter, "GET", "/keys", key=fake_openrouter.api_key)
    assert status == 401


def test_a_key_over_its_limit_is_refused_until_its_window_resets(fake_openrouter):
    _create(fake_openrouter, external={"user": "u1", "api_key": PARTNER_KEY}, limit=0.000001, limit_reset="daily")
    assert _chat(fake_openrouter, PARTNER_KEY)[0] == 200
    status, payload = _chat(fake_openrouter, PARTNER_KEY)
    assert status == 402
    assert payload["error"]["metadata"] == {"limit_source": "openrouter_key_limit"}
    fake_openrouter.clock = (datetime.now(UTC) + timedelta(days=1)).timestamp
    assert _chat(fake_openrouter, PARTNER_KEY)[0] == 200


def test_update_disable_and_delete(fake_openrouter):
    key_hash = _create(fake_openrouter, external={"user": "u1", "api_key": PARTNER_KEY})["data"]["hash"]
    status, updated = _call(fake_openrouter, "PATCH", f"/keys/{key_hash}", {"limit": 3.0, "disabled": True})
    assert (status, updated["data"]["limit"], updated["data"]["disabled"]) == (200, 3.0, True)
    assert _chat(fake_openrouter, PARTNER_KEY)[0] == 401
    assert _call(fake_openrouter, "PATCH", f"/keys/{key_hash}", {"limit": "x"})[0] == 400
    assert _call(fake_openrouter, "GET", "/keys")[1]["data"] == []  # disabled keys are left out by default
    assert _call(fake_openrouter, "DELETE", f"/keys/{key_hash}")[0] == 200
    assert _call(fake_openrouter, "GET", f"/keys/{key_hash}")[0] == 404
    assert _chat(fake_openrouter, PARTNER_KEY)[0] == 401


def test_external_users(fake_openrouter):
    assert _call(fake_openrouter, "POST", "/external-users", {"user": "u1"})[0] == 200
    assert _call(fake_openrouter, "POST", "/external-users", {"user": "u1"})[0] == 200  # registering again: fine
    assert _call(fake_openrouter, "POST", "/external-users", {"user": " u2 "})[0] == 400
    assert _call(fake_openrouter, "POST", "/external-users", {"name": "u3"})[0] == 400
    assert [u["user"] for u in _call(fake_openrouter, "GET", "/external-users")[1]["data"]] == ["u1"]
    assert _call(fake_openrouter, "GET", "/external-users/u1")[1]["data"]["deactivated"] is False
    assert _call(fake_openrouter, "DELETE", "/external-users/u1")[0] == 200
    assert _call(fake_openrouter, "GET", "/external-users/nobody")[0] == 404
