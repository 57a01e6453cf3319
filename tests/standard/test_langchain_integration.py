"""LangChain's standard integration suite, run against ChatOpenRouter and the local OpenRouter-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from openrouter_attribution.testing import FakeOpenRouter
from tests.standard.capabilities import ChatOpenRouterCapabilities

MODEL = "openai/gpt-4o-mini"
_SERVER: dict[str, FakeOpenRouter] = {}


@pytest.fixture(scope="module", autouse=True)
def server() -> Iterator[FakeOpenRouter]:
    """One local server for the module; the suite reads its address through ``chat_model_params``."""
    with FakeOpenRouter() as fake:
        _SERVER["fake"] = fake
        yield fake
    _SERVER.clear()


def _params() -> dict[str, Any]:
    fake = _SERVER["fake"]
    # The standard suite is not about attribution: its calls opt out of the missing-user warning.
    return {"model": MODEL, "base_url": fake.base_url, "api_key": fake.api_key, "max_retries": 0, "require_user": False}


class TestChatOpenRouterIntegration(ChatOpenRouterCapabilities, ChatModelIntegrationTests):
    """Capability flags left at the suite's default (False), each skipping its tests:

    - ``supports_pdf_inputs``, ``supports_audio_inputs``, ``supports_image_tool_message``,
      ``supports_pdf_tool_message``: these tests download their inputs from the internet and
      judge a real model's reading of them; the local server cannot read a PDF or audio.
    - ``supports_anthropic_inputs``: Anthropic-format content blocks are not an OpenRouter input format.
    - ``enable_vcr_tests``: nothing to record; every test already runs against the local server.
    """

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _params()

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "anthropic/claude-3.5-sonnet"

    @pytest.mark.xfail(
        reason="the standard test downloads its test image from upload.wikimedia.org, and tests run offline; "
        "image content blocks are checked on the wire in tests/wire/test_langchain_multimodal.py",
        raises=httpx.ConnectError,
        strict=False,
    )
    def test_image_inputs(self, model: BaseChatModel) -> None:
        super().test_image_inputs(model)


class TestChatOpenRouterResponsesIntegration(TestChatOpenRouterIntegration):
    """The same suite with ``use_responses_api=True``: every call goes to ``POST /responses``; the flags
    and their reasons are those of the chat suite above."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**_params(), "use_responses_api": True}
