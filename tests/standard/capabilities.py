"""Capability flags shared by the LangChain standard unit and integration suites for ChatOpenRouter."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from openrouter_attribution.langchain import ChatOpenRouter


class ChatOpenRouterCapabilities:
    """What ChatOpenRouter supports, as the standard suites ask it."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatOpenRouter

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True
