"""Bearer auth on every endpoint, with OpenRouter's error body; rejected requests are still recorded."""

from __future__ import annotations

import http.client
import json

import openai
import pytest

ENDPOINTS = [
    (
        "POST",
        "/api/v1/chat/completions",
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
    ),
    ("GET", "/api/v1/models", None),
    ("GET", "/api/v1/generation?id=gen-1", None),
    ("GET", "/api/v1/key", None),
    ("GET", "/api/v1/nowhere", None),
]
BAD_AUTH = [
    pytest.param({}, "No auth credentials found", id="missing"),
    pytest.param({"Authorization": "Bearer sk-or-wrong"}, "User not found.", id="wrong-key"),
    pytest.param({"Authorization": "Basic sk-or-fake-key"}, "User not found.", id="wrong-scheme"),
    pytest.param({"Authorization": "Bearer"}, "User not found.", id="empty-token"),
]


def _call(server, method, path, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response, payload


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(("headers", "message"), BAD_AUTH)
def test_bad_auth_is_401_with_openrouter_error_body(fake_openrouter, method, path, body, headers, message):
    response, payload = _call(fake_openrouter, method, path, body, headers)
    assert response.status == 401
    assert response.getheader("Content-Type") == "application/json"
    assert payload == {"error": {"code": 401, "message": message, "metadata": {}}}
    recorded = fake_openrouter.last_request
    assert (recorded.method, recorded.path) == (method, path.split("?")[0])
    assert fake_openrouter.generations == {}


def test_good_auth_is_accepted_case_insensitively(fake_openrouter):
    response, _ = _call(fake_openrouter, "GET", "/api/v1/models", None, {"authorization": "bearer sk-or-fake-key"})
    assert response.status == 200


def test_openai_sdk_sees_authentication_error(fake_openrouter):
    client = openai.OpenAI(base_url=fake_openrouter.base_url, api_key="sk-or-nope", max_retries=0)
    with client, pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    assert info.value.body == {"code": 401, "message": "User not found.", "metadata": {}}
    assert len(fake_openrouter.chat_requests) == 1


def test_custom_api_key_is_the_only_one_accepted():
    from openrouter_attribution.testing import FakeOpenRouter

    with FakeOpenRouter(api_key="sk-or-custom") as fake:
        assert _call(fake, "GET", "/api/v1/key", None, {"Authorization": "Bearer sk-or-custom"})[0].status == 200
        assert _call(fake, "GET", "/api/v1/key", None, {"Authorization": "Bearer sk-or-fake-key"})[0].status == 401
