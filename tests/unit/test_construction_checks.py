"""Settings that cannot work fail when the model is built, with ConfigurationError, and never echo secrets."""

from __future__ import annotations

import pytest

from openrouter_attribution import ConfigurationError, langchain, llama_index
from openrouter_attribution.langchain import ChatOpenRouter, OpenRouterEmbeddings
from openrouter_attribution.llama_index import OpenRouter, OpenRouterEmbedding

MODELS = [
    ChatOpenRouter,
    OpenRouter,
    OpenRouterEmbeddings,
    OpenRouterEmbedding,
    langchain.OpenRouterRerank,
    llama_index.OpenRouterRerank,
]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(
    "base_url",
    [
        "not a url",
        "openrouter.ai/api/v1",
        "ftp://openrouter.ai/api/v1",
        "https://",
        "http://:8080/v1",
        "https://open router.ai/api/v1",
        "http://127.0.0.1:99999/api/v1",
        "http://127.0.0.1:port/api/v1",
    ],
)
def test_base_url_needs_an_http_scheme_and_a_host(cls, base_url):
    with pytest.raises(ConfigurationError, match="base_url must be an http:// or https:// URL with a host"):
        cls(model="openai/gpt-4o-mini", api_key="sk-or-test", base_url=base_url)


@pytest.mark.parametrize("cls", MODELS)
def test_base_url_error_never_shows_credentials_written_into_it(cls):
    with pytest.raises(ConfigurationError) as info:
        cls(model="openai/gpt-4o-mini", api_key="sk-or-test", base_url="ftp://admin:hunter2-secret@proxy.local/v1")
    assert "hunter2-secret" not in str(info.value)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("base_url", ["https://openrouter.ai/api/v1/", "http://127.0.0.1:9/api/v1",
                                      "http://[::1]:8080/api/v1", "https://proxy.internal/openrouter"])  # fmt: skip
def test_good_base_urls_are_accepted(cls, base_url):
    model = cls(model="openai/gpt-4o-mini", api_key="sk-or-test", base_url=base_url, require_user=False)
    assert model._invoker.connection.base_url == base_url.rstrip("/")


def test_base_url_from_the_environment_is_checked_too(monkeypatch):
    monkeypatch.setenv("OPENROUTER_BASE_URL", "localhost:8080")
    with pytest.raises(ConfigurationError, match="OPENROUTER_BASE_URL"):
        ChatOpenRouter(api_key="sk-or-test")


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("field", ["user", "session_id", "metadata", "trace"])
def test_attribution_in_extra_body_is_refused(cls, field):
    with pytest.raises(ConfigurationError, match="identity policy") as info:
        cls(api_key="sk-or-test", extra_body={field: "x"})
    assert "'" + field + "'" in str(info.value)


@pytest.mark.parametrize("cls", MODELS)
def test_session_header_is_refused(cls):
    with pytest.raises(ConfigurationError, match="session_id="):
        cls(api_key="sk-or-test", default_headers={"X-Session-Id": "s-1"})


@pytest.mark.parametrize("cls", MODELS)
def test_require_user_defaults_to_warn(cls):
    assert cls(api_key="sk-or-test").require_user == "warn"
