"""Context window and output limits of well-known OpenRouter models, for ``LLMMetadata``.

LlamaIndex sizes prompts with these numbers (``PromptHelper``, memory token
limits); they are never sent to OpenRouter. The table is deliberately small:
OpenRouter adds models every week, so an unknown id gets the defaults below,
never an error. Set ``context_window`` / ``num_output`` on the model to override.
Figures from OpenRouter's model pages (``context_length`` and the top provider's
``max_completion_tokens``).
"""

from __future__ import annotations

__all__ = ["DEFAULT_CONTEXT_WINDOW", "DEFAULT_NUM_OUTPUT", "model_limits"]

DEFAULT_CONTEXT_WINDOW = 32_768
"""Context window assumed for models not in the table (most current chat models have at least this)."""
DEFAULT_NUM_OUTPUT = 4_096
"""Output tokens reserved for models not in the table."""

# Longest matching prefix wins, so dated variants ("openai/gpt-4o-2024-08-06") match their family.
_LIMITS: dict[str, tuple[int, int]] = {
    "openai/gpt-4o": (128_000, 16_384),
    "openai/gpt-4.1": (1_047_576, 32_768),
    "openai/gpt-5": (400_000, 128_000),
    "openai/o3": (200_000, 100_000),
    "openai/o4-mini": (200_000, 100_000),
    "anthropic/claude-3.5-sonnet": (200_000, 8_192),
    "anthropic/claude-3.5-haiku": (200_000, 8_192),
    "anthropic/claude-3.7-sonnet": (200_000, 64_000),
    "anthropic/claude-sonnet-4": (200_000, 64_000),
    "anthropic/claude-opus-4": (200_000, 32_000),
    "anthropic/claude-haiku-4.5": (200_000, 64_000),
    "google/gemini-2.0-flash": (1_048_576, 8_192),
    "google/gemini-2.5-flash": (1_048_576, 65_535),
    "google/gemini-2.5-pro": (1_048_576, 65_536),
    "meta-llama/llama-3.1-8b-instruct": (131_072, 16_384),
    "meta-llama/llama-3.3-70b-instruct": (131_072, 16_384),
    "deepseek/deepseek-chat": (163_840, 163_840),
    "deepseek/deepseek-r1": (163_840, 163_840),
    "mistralai/mistral-large": (128_000, 4_096),
    "x-ai/grok-4": (256_000, 256_000),
    "qwen/qwen3-235b-a22b": (131_072, 32_768),
}


def model_limits(model: str) -> tuple[int, int]:
    """``(context_window, num_output)`` for an OpenRouter model id; the defaults when unknown.

    Variant suffixes such as ``:free`` or ``:nitro`` are ignored.

    Example:
        >>> model_limits("openai/gpt-4o-mini:free")
        (128000, 16384)
        >>> model_limits("someone/new-model") == (DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUT)
        True
    """
    base = model.split(":", 1)[0].lower()
    best = ""
    for prefix in _LIMITS:
        if base.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return _LIMITS[best] if best else (DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUT)
