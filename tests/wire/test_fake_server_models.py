"""The local server's model catalog: what GET /models lists is what it serves; unknown ids get OpenRouter's 400."""

from __future__ import annotations

import http.client
import json
import logging

import openai
import pytest

from openrouter_attribution import errors
from openrouter_attribution.testing import CATALOG, FakeOpenRouter, ModelInfo

USER = [{"role": "user", "content": "hi"}]


def _post(server, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/api/v1/chat/completions", body=json.dumps(body),
                 headers={"Authorization": f"Bearer {server.api_key}", **(headers or {})})  # fmt: skip
    response = conn.getresponse()
    payload = json.loads(response.read() or b"null")
    conn.close()
    return response.status, payload


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        ({"model": "openai/gpt-4o-mnii", "messages": USER}, "openai/gpt-4o-mnii"),
        ({"model": "gpt-4o", "messages": USER}, "gpt-4o"),
        ({"model": "openai/gpt-4o-mini", "models": ["anthropic/claude-9"], "messages": USER}, "anthropic/claude-9"),
        ({"model": "openai/gpt-4o-mini:free", "messages": USER}, "openai/gpt-4o-mini:free"),
        ({"model": "", "messages": USER}, ""),
        ({"model": "openai/gpt-4o-mnii"}, "openai/gpt-4o-mnii"),  # the model is checked before the body
    ],
)
def test_unknown_model_ids_get_openrouters_400(fake_openrouter, body, bad):
    status, payload = _post(fake_openrouter, body)
    assert status == 400
    # The body OpenRouter sends for an unknown model id.
    assert payload == {"error": {"message": f"{bad} is not a valid model ID", "code": 400}}
    assert fake_openrouter.generations == {}


def test_every_listed_model_is_served_and_nothing_else(fake_openrouter):
    with openai.OpenAI(base_url=fake_openrouter.base_url, api_key=fake_openrouter.api_key, max_retries=0) as client:
        listed = [model.id for model in client.models.list()]
        for model_id in listed:
            reply = client.chat.completions.create(model=model_id, messages=USER)
            assert reply.model == (model_id if model_id != "openrouter/auto" else CATALOG[0].id)
        with pytest.raises(openai.BadRequestError, match="is not a valid model ID"):
            client.chat.completions.create(model="someone/not-listed", messages=USER)
    assert set(listed) == {m.id for m in CATALOG} | {"openrouter/auto"}
    assert [m.id for m in fake_openrouter.models] == [m.id for m in CATALOG]


@pytest.mark.parametrize("variant", [":nitro", ":floor", ":online"])
def test_variants_of_listed_models_are_served_by_the_model(fake_openrouter, variant):
    status, payload = _post(fake_openrouter, {"model": "anthropic/claude-3.5-sonnet" + variant, "messages": USER})
    assert status == 200
    assert payload["model"] == "anthropic/claude-3.5-sonnet"


def test_fault_ids_are_reserved_and_keep_working(fake_openrouter):
    assert _post(fake_openrouter, {"model": "fake/fault-429", "messages": USER})[0] == 429
    status, payload = _post(fake_openrouter, {"model": "fake/fault-502", "models": ["openai/gpt-4o"], "messages": USER})
    assert (status, payload["model"]) == (200, "openai/gpt-4o")


def test_models_added_to_a_server_are_listed_priced_and_served():
    custom = ModelInfo("acme/reasoner-1", "Acme: Reasoner 1", 65_536, "0.000002", "0.000008", 8_192)
    with FakeOpenRouter(models=[custom, "acme/plain-1"]) as server:
        with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as client:
            listed = {model.id: model for model in client.models.list()}
            reply = client.chat.completions.create(model="acme/reasoner-1", messages=USER)
            plain = client.chat.completions.create(model="acme/plain-1", messages=USER)
        assert {"acme/reasoner-1", "acme/plain-1"} <= set(listed)
        assert listed["acme/reasoner-1"].model_extra["pricing"]["prompt"] == "0.000002"
        expected = 0.000002 * reply.usage.prompt_tokens + 0.000008 * reply.usage.completion_tokens
        assert reply.usage.model_extra["cost"] == pytest.approx(expected)
        assert plain.model == "acme/plain-1"
    with FakeOpenRouter() as other:  # added to that server only
        assert _post(other, {"model": "acme/reasoner-1", "messages": USER})[0] == 400


@pytest.mark.parametrize("bad", ["no-slash", "", 42])
def test_added_models_must_be_vendor_slash_name(bad):
    with pytest.raises(ValueError, match="vendor/name"):
        FakeOpenRouter(models=[bad])


@pytest.mark.parametrize("port", [-1, 65536, 99999])
def test_port_out_of_range_is_refused_at_construction(port):
    with pytest.raises(ValueError, match="0 to 65535"):
        FakeOpenRouter(port=port)


def test_a_typo_in_the_model_id_fails_the_call_like_openrouter(fake_openrouter, make_chat):
    with pytest.raises(errors.BadRequestError) as info:
        make_chat(model="openai/gpt-4o-mnii").invoke("hi")
    assert info.value.status_code == 400
    assert info.value.message == "openai/gpt-4o-mnii is not a valid model ID"


def test_one_log_line_per_request(fake_openrouter, caplog):
    caplog.set_level(logging.INFO, logger="openrouter_attribution.testing")
    _post(fake_openrouter, {"model": "openai/gpt-4o-mini", "messages": USER, "user": "app_7", "session_id": "s-1"})
    _post(fake_openrouter, {"model": "openai/gpt-4o-mnii", "messages": USER})
    with pytest.raises(http.client.RemoteDisconnected):
        _post(fake_openrouter, {"messages": USER}, {"x-session-id": "from-header", "X-Fake-Fault": "drop-connection"})
    lines = [r.getMessage() for r in caplog.records if r.name == "openrouter_attribution.testing"]
    assert lines == [
        "POST /api/v1/chat/completions model=openai/gpt-4o-mini user=app_7 session=s-1 status=200",
        "POST /api/v1/chat/completions model=openai/gpt-4o-mnii user=- session=- status=400",
        "POST /api/v1/chat/completions model=- user=- session=from-header status=dropped",
    ]
