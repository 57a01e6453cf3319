"""The fake server's ``POST /embeddings``: request validation, deterministic vectors, answer bodies. No I/O.

**Validation**, as strict as OpenRouter: the body is checked against the official OpenRouter SDK's
``CreateEmbeddingsRequestBody`` (strict JSON types; explicit type checks when the SDK is not
installed), then: ``model`` of the form ``vendor/name`` and one of
:data:`~openrouter_attribution.testing.catalog.EMBEDDING_CATALOG` (a chat model is refused:
OpenRouter serves embeddings from embeddings models only; ``fake/fault-<name>`` ids pass, see
:mod:`~openrouter_attribution.testing.faults`); ``input`` a non-empty string, a list of 1 to 2048
non-empty strings, a token array or a list of token arrays (OpenAI's limits); each input within the
model's context length and the whole request within 300,000 tokens (tokens estimated as one per
four characters); ``dimensions`` an integer >= 1, only for models that can shorten their vectors
and at most their native size; ``encoding_format`` ``"float"`` or ``"base64"``; ``user`` and
``session_id`` at most 256 characters.

**Vectors** are deterministic and unit-normalised, of ``dimensions`` (or the model's) size: each
word of the text adds a few hashed, signed components (so texts that share words are close, as with
a real model, and retrieval in a RAG demo finds the matching document), plus a small hashed dense
part unique to the exact text. The same text, model and size always give the same vector.
``encoding_format: "base64"`` sends the little-endian float32 bytes, ``"float"`` the same float32
values as JSON numbers (nine significant digits).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import sys
import uuid
from array import array
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from openrouter_attribution.testing.catalog import (
    CATALOG,
    DEFAULT_EMBEDDING_MODEL,
    EmbeddingModelInfo,
    lookup_embedding_model,
)
from openrouter_attribution.testing.content import estimate_tokens
from openrouter_attribution.testing.faults import FAULT_MODEL_PREFIX
from openrouter_attribution.testing.responses import GENERATION_NULL_FIELDS
from openrouter_attribution.testing.validation import RequestValidationError, _from_pydantic, check_id_lengths

__all__ = [
    "MAX_INPUTS",
    "MAX_TOKENS_PER_REQUEST",
    "EmbeddingsRequest",
    "build_embeddings_body",
    "build_embeddings_generation",
    "build_input_generation",
    "embed",
    "validate_embeddings_request",
]

MAX_INPUTS = 2048
"""Most inputs per request (OpenAI's documented limit)."""
MAX_TOKENS_PER_REQUEST = 300_000
"""Most tokens summed over the inputs of one request (OpenAI's documented limit)."""

_MODEL_ID = re.compile(r"^[^/\s]+/\S+$")
_WORD = re.compile(r"\w+")
_CHAT_IDS = frozenset(model.id for model in CATALOG)
_LITTLE_ENDIAN = sys.byteorder == "little"
_SIGNS_PER_WORD = 8
_DENSE_SHARE = 0.3


class EmbeddingsRequest(NamedTuple):
    """A validated embeddings request."""

    model: EmbeddingModelInfo
    """The model that serves it (the default one for a request naming only a fault model)."""
    model_id: str
    """The model id as requested."""
    inputs: list[str | tuple[int, ...]]
    """Texts or token arrays, one per vector."""
    tokens: list[int]
    """Estimated tokens of each input."""
    dimensions: int
    """Size of the vectors to return."""
    encoding_format: str
    """``"float"`` or ``"base64"``."""


def validate_embeddings_request(body: Any) -> EmbeddingsRequest:
    """Validate a parsed ``POST /embeddings`` body.

    Raises:
        RequestValidationError: the body is invalid; the message names the field.
    """
    if not isinstance(body, dict):
        raise RequestValidationError("", "Request body must be a JSON object")
    if not _validate_with_sdk(body):
        _validate_basic_types(body)
    check_id_lengths(body)
    model_id = body["model"]
    model = _model(model_id)
    inputs = _inputs(body["input"])
    tokens = [estimate_tokens(item) if isinstance(item, str) else len(item) for item in inputs]
    for index, count in enumerate(tokens):
        if count > model.context_length:
            raise RequestValidationError(
                f"input[{index}]",
                f"input[{index}] has {count} tokens; {model.id} accepts at most {model.context_length} per input",
            )
    if sum(tokens) > MAX_TOKENS_PER_REQUEST:
        raise RequestValidationError(
            "input", f"the inputs have {sum(tokens)} tokens; at most {MAX_TOKENS_PER_REQUEST} per request"
        )
    return EmbeddingsRequest(model, model_id, inputs, tokens, _dimensions(body, model), _encoding(body))


def _validate_with_sdk(body: dict[str, Any]) -> bool:
    try:
        from openrouter.operations import CreateEmbeddingsRequestBody
        from pydantic import ValidationError
    except ImportError:
        return False
    try:
        CreateEmbeddingsRequestBody.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as err:
        raise _from_pydantic(body, err.errors()) from err
    return True


_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a string"),
    "input": ((str, list), "a string or a list"),
    "dimensions": ((int,), "an integer"),
    "encoding_format": ((str,), "a string"),
    "input_type": ((str,), "a string"),
    "provider": ((dict,), "an object"),
    "user": ((str,), "a string"),
    "session_id": ((str,), "a string"),
    "trace": ((dict,), "an object"),
}


def _validate_basic_types(body: dict[str, Any]) -> None:
    """Without the SDK: required fields and top-level types."""
    for name in ("input", "model"):
        if name not in body:
            raise RequestValidationError(name, f"Invalid value for '{name}': Field required")
    for name, (types, expected) in _TYPES.items():
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            raise RequestValidationError(name, f"Invalid value for '{name}': expected {expected}")


def _model(model_id: str) -> EmbeddingModelInfo:
    if not _MODEL_ID.match(model_id):
        raise RequestValidationError("model", f"{model_id} is not a valid model ID")
    if model_id.startswith(FAULT_MODEL_PREFIX):
        model = lookup_embedding_model(DEFAULT_EMBEDDING_MODEL)
    else:
        model = lookup_embedding_model(model_id)
    if model is not None:
        return model
    if model_id.split(":", 1)[0] in _CHAT_IDS:
        raise RequestValidationError("model", f"{model_id} is not an embeddings model")
    raise RequestValidationError("model", f"{model_id} is not a valid model ID")


def _inputs(raw: Any) -> list[str | tuple[int, ...]]:
    """Normalise ``input`` to one entry per vector: a text or a token array."""
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif raw and all(_is_token(value) for value in raw):
        items = [raw]  # a single token array
    else:
        items = list(raw)
    if not items:
        raise RequestValidationError("input", "Invalid value for 'input': at least one input is required")
    if len(items) > MAX_INPUTS:
        raise RequestValidationError("input", f"'input' may hold at most {MAX_INPUTS} items (got {len(items)})")
    out: list[str | tuple[int, ...]] = []
    for index, item in enumerate(items):
        if isinstance(item, str) and item:
            out.append(item)
        elif isinstance(item, list) and item and all(_is_token(value) for value in item):
            out.append(tuple(item))
        else:
            kind = "an empty string" if item == "" else "not text or a token array"
            raise RequestValidationError(f"input[{index}]", f"Invalid value for 'input[{index}]': {kind}")
    return out


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _dimensions(body: Mapping[str, Any], model: EmbeddingModelInfo) -> int:
    dimensions = body.get("dimensions")
    if dimensions is None:
        return model.dimensions
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise RequestValidationError("dimensions", "'dimensions' must be an integer >= 1")
    if not model.settable_dimensions:
        raise RequestValidationError("dimensions", f"{model.id} does not support 'dimensions'")
    if dimensions > model.dimensions:
        raise RequestValidationError(
            "dimensions", f"'dimensions' must be at most {model.dimensions} for {model.id} (got {dimensions})"
        )
    return dimensions


def _encoding(body: Mapping[str, Any]) -> str:
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestValidationError(
            "encoding_format", f"Invalid value for 'encoding_format': {encoding!r} (expected 'float' or 'base64')"
        )
    return str(encoding)


# -- vectors ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def embed(model_id: str, item: str | tuple[int, ...], dimensions: int) -> tuple[float, ...]:
    """The unit vector of one input (float32 values), deterministic in (model, input, size)."""
    text = item if isinstance(item, str) else " ".join(f"token{value}" for value in item)
    salt = model_id.split(":", 1)[0].encode() + b"\0"
    sparse = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(salt + word.encode(), digest_size=4 * _SIGNS_PER_WORD).digest()
        for offset in range(0, len(digest), 4):
            number = int.from_bytes(digest[offset : offset + 4], "little")
            sparse[(number & 0x7FFFFFFF) % dimensions] += -1.0 if number >> 31 else 1.0
    dense = array("h", hashlib.shake_256(salt + text.encode()).digest(2 * dimensions))
    if not _LITTLE_ENDIAN:
        dense.byteswap()
    sparse_norm = math.sqrt(sum(value * value for value in sparse))
    dense_norm = math.sqrt(sum(value * value for value in dense)) or 1.0
    scale = (_DENSE_SHARE * sparse_norm if sparse_norm else 1.0) / dense_norm
    vector = [value + scale * noise for value, noise in zip(sparse, dense, strict=True)]
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return tuple(array("f", [value / norm for value in vector]).tolist())


def _encoded(vector: tuple[float, ...], encoding: str) -> list[float] | str:
    if encoding == "base64":
        values = array("f", vector)
        if not _LITTLE_ENDIAN:
            values.byteswap()
        return base64.b64encode(values.tobytes()).decode("ascii")
    return [float(f"{value:.9g}") for value in vector]


def build_embeddings_body(request: EmbeddingsRequest, generation_id: str) -> dict[str, Any]:
    """The ``200`` body: ``id``, ``object``, ``data`` (in input order, with ``index``), ``model``, ``usage``."""
    data = [
        {"object": "embedding", "index": index,
         "embedding": _encoded(embed(request.model.id, item, request.dimensions), request.encoding_format)}
        for index, item in enumerate(request.inputs)
    ]  # fmt: skip
    tokens = sum(request.tokens)
    cost = request.model.cost(tokens)
    usage = {
        "prompt_tokens": tokens,
        "total_tokens": tokens,
        "cost": cost,
        "is_byok": False,
        "cost_details": {
            "upstream_inference_cost": cost,
            "upstream_inference_prompt_cost": cost,
            "upstream_inference_completions_cost": 0.0,
        },
    }
    return {"id": generation_id, "object": "list", "data": data, "model": request.model_id, "usage": usage}


def build_embeddings_generation(
    request: EmbeddingsRequest,
    generation_id: str,
    created: int,
    *,
    user: str | None,
    session_id: str | None,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """The ``data`` of ``GET /generation?id=...`` for an embeddings request (``api_type: "embeddings"``)."""
    tokens = sum(request.tokens)
    return build_input_generation(
        generation_id, created, model_id=request.model_id, provider_name=request.model.provider_name,
        tokens=tokens, cost=request.model.cost(tokens), api_type="embeddings", upstream_prefix="emb",
        user=user, session_id=session_id, headers=headers,
    )  # fmt: skip


def build_input_generation(
    generation_id: str,
    created: int,
    *,
    model_id: str,
    provider_name: str,
    tokens: int,
    cost: float,
    api_type: str,
    upstream_prefix: str,
    user: str | None,
    session_id: str | None,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """The ``data`` of ``GET /generation?id=...`` for a request that reads tokens and writes none (embeddings,
    rerank): ``tokens`` prompt tokens, no completion, ``cost`` in US dollars."""
    referer = headers.get("HTTP-Referer")
    return {
        "id": generation_id,
        "upstream_id": f"{upstream_prefix}-{uuid.uuid4().hex[:24]}",
        "model": model_id,
        "provider_name": provider_name,
        "user": user,
        "external_user": user,
        "session_id": session_id,
        "created_at": datetime.fromtimestamp(created, tz=UTC).isoformat(),
        "streamed": False,
        "cancelled": False,
        "finish_reason": None,
        "native_finish_reason": None,
        "tokens_prompt": tokens,
        "tokens_completion": 0,
        "native_tokens_prompt": tokens,
        "native_tokens_completion": 0,
        "native_tokens_reasoning": 0,
        "native_tokens_cached": 0,
        "native_tokens_completion_images": 0,
        "total_cost": cost,
        "usage": cost,
        "upstream_inference_cost": cost,
        "is_byok": False,
        "origin": referer or "",
        "http_referer": referer,
        "user_agent": headers.get("User-Agent"),
        "api_type": api_type,
        "data_region": "global",
        "latency": 0.0,
        "generation_time": 0.0,
        **dict.fromkeys(GENERATION_NULL_FIELDS),
    }
