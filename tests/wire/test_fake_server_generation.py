"""GET /generation for reconciliation: a billed cost that differs from the reported one, late and unknown stats."""

from __future__ import annotations

import http.client
import json
import time
from decimal import Decimal

import openai
import pytest
from openrouter.components import GenerationResponse

from openrouter_attribution.testing.catalog import lookup_model

MODEL = "openai/gpt-4o-mini"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]


def _generation(server, gid):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", f"/api/v1/generation?id={gid}", headers={"Authorization": f"Bearer {server.api_key}"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def test_cached_prompt_tokens_are_billed_at_a_quarter_of_the_price(fake_openrouter, client):
    first = client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body={"user": "app_1"})
    second = client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body={"user": "app_1"})
    status, payload = _generation(fake_openrouter, first.id)
    assert status == 200
    GenerationResponse.model_validate(payload)
    assert payload["data"]["total_cost"] == first.usage.model_extra["cost"]  # nothing cached: billed as reported
    assert payload["data"]["cache_discount"] is None
    status, payload = _generation(fake_openrouter, second.id)
    GenerationResponse.model_validate(payload)
    data = payload["data"]
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached > 0
    assert data["native_tokens_cached"] == cached
    discount = Decimal(lookup_model(MODEL).prompt_price) * cached * Decimal("0.75")
    assert Decimal(str(data["cache_discount"])) == discount
    reported = Decimal(str(second.usage.model_extra["cost"]))
    assert Decimal(str(data["total_cost"])) == reported - discount  # billed differs from usage.cost
    assert (data["external_user"], data["cancelled"]) == ("app_1", False)


def test_stats_appear_after_the_generation_delay(fake_openrouter, client):
    fake_openrouter.generation_delay = 0.3
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert _generation(fake_openrouter, reply.id)[0] == 404  # a fresh id: "not yet"
    assert reply.id in fake_openrouter.generations  # the test can still see it
    time.sleep(0.35)
    assert _generation(fake_openrouter, reply.id)[0] == 200
    fake_openrouter.reset()
    assert (fake_openrouter.generation_delay, fake_openrouter.generation_latency) == (0.0, 0.0)


def test_a_forgotten_generation_is_unknown(fake_openrouter, client):
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert fake_openrouter.forget_generation(reply.id) is True
    assert fake_openrouter.forget_generation(reply.id) is False
    status, payload = _generation(fake_openrouter, reply.id)
    assert (status, payload["error"]["message"]) == (404, f"Generation {reply.id} not found")


@pytest.mark.parametrize("fault", ["mid-stream-error", "drop-connection"])
def test_a_stream_that_did_not_reach_the_client_whole_is_cancelled(fake_openrouter, client, fault):
    fake_openrouter.inject_fault(fault)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            pass
    (generation,) = fake_openrouter.generations.values()
    assert generation["cancelled"] is True
    assert generation["streamed"] is True
