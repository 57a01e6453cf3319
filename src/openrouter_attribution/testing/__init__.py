"""A local, OpenRouter-compatible server for offline tests of apps built on this library.

Start one with ``with FakeOpenRouter() as server:`` and point any OpenAI-compatible
client at ``server.base_url`` with ``server.api_key``; or, under pytest, use the
``fake_openrouter`` fixture (:mod:`openrouter_attribution.testing.pytest_plugin`).
"""

from __future__ import annotations

from openrouter_attribution.testing.catalog import CATALOG, DEFAULT_PRICING, ModelInfo
from openrouter_attribution.testing.faults import (
    DELAY_HEADER,
    FAULT_HEADER,
    FAULT_MODEL_PREFIX,
    FAULT_NAMES,
    RETRY_AFTER_HEADER,
)
from openrouter_attribution.testing.recording import HeaderMap, RecordedRequest
from openrouter_attribution.testing.server import DEFAULT_API_KEY, FakeOpenRouter

__all__ = [
    "CATALOG",
    "DEFAULT_API_KEY",
    "DEFAULT_PRICING",
    "DELAY_HEADER",
    "FAULT_HEADER",
    "FAULT_MODEL_PREFIX",
    "FAULT_NAMES",
    "RETRY_AFTER_HEADER",
    "FakeOpenRouter",
    "HeaderMap",
    "ModelInfo",
    "RecordedRequest",
]
