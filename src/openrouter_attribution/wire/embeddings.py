"""Build the bodies of ``POST /embeddings`` and parse its answers.

The request is OpenAI's embeddings shape plus OpenRouter's attribution fields, as the official
OpenRouter SDK's ``CreateEmbeddingsRequestBody`` lists them
(https://openrouter.ai/docs/api/api-reference/embeddings/create-embeddings): ``model``,
``input`` (a string or a list of strings; token arrays too, not produced here),
``dimensions`` (>= 1), ``encoding_format`` (``"float"`` or ``"base64"``), ``input_type``,
``provider``, ``user``, ``session_id`` and ``trace``. ``metadata`` is not an embeddings field, so
an attribution's ``metadata`` is not sent with embeddings.

The answer is ``{"id", "object": "list", "model", "data": [{"object": "embedding", "index",
"embedding"}], "usage": {"prompt_tokens", "total_tokens", "cost", ...}}``, where each
``embedding`` is a list of floats or, with ``encoding_format: "base64"``, the base64 of the
vector's little-endian float32 bytes (OpenAI's format, which OpenRouter passes on).

Limits checked before anything is sent: OpenAI documents at most
:data:`MAX_INPUTS_PER_REQUEST` inputs per request and refuses empty strings
(https://platform.openai.com/docs/api-reference/embeddings/create); OpenRouter documents no
other bound, so that is the cap for a batch.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.errors import ConfigurationError, InvalidInputError, InvalidResponseError
from openrouter_attribution.wire.errors import parse_error_object
from openrouter_attribution.wire.request import build_attribution_fields
from openrouter_attribution.wire.response import Usage, parse_usage

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EMBEDDING_MODEL",
    "ENCODING_FORMATS",
    "MAX_INPUTS_PER_REQUEST",
    "EmbeddingResult",
    "build_embedding_bodies",
    "check_embedding_options",
    "check_same_dimensions",
    "decode_base64_vector",
    "parse_embeddings",
]

MAX_INPUTS_PER_REQUEST = 2048
"""Most inputs one ``POST /embeddings`` may carry (OpenAI's documented limit, which OpenRouter mirrors)."""

DEFAULT_BATCH_SIZE = 512
"""Inputs per request by default: well under :data:`MAX_INPUTS_PER_REQUEST`, and under OpenAI's
300,000 tokens per request for chunks of up to ~580 tokens (typical RAG chunks are 200-500)."""

DEFAULT_EMBEDDING_MODEL = "openai/text-embedding-3-small"
"""The model of OpenRouter's own embeddings examples."""

ENCODING_FORMATS = ("float", "base64")
"""Values of ``encoding_format``; both are returned as lists of floats."""

# Native sizes of well-known models, to refuse an impossible `dimensions` before sending. Unknown models
# get no check beyond `dimensions >= 1`: OpenRouter adds models every week. `None`: the model has a fixed
# size and refuses `dimensions` ("only supported in text-embedding-3 and later models", OpenAI).
_KNOWN_DIMENSIONS: dict[str, tuple[int, bool]] = {
    "openai/text-embedding-3-small": (1536, True),
    "openai/text-embedding-3-large": (3072, True),
    "openai/text-embedding-ada-002": (1536, False),
}

_LITTLE_ENDIAN = sys.byteorder == "little"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_embedding_options(options: Mapping[str, Any], *, batch_field: str = "batch_size") -> None:
    """Check the embeddings options given to a constructor (only the keys present).

    Args:
        options: Constructor keywords: ``model``, ``dimensions``, ``encoding_format`` and the batch size.
        batch_field: The framework's name of the batch size field.

    Raises:
        ConfigurationError: a value OpenRouter would refuse, with what to change.
    """
    encoding = options.get("encoding_format", "base64")
    if encoding not in ENCODING_FORMATS:
        raise ConfigurationError(
            f"encoding_format must be 'float' or 'base64', got {encoding!r}; both return lists of floats."
        )
    batch = options.get(batch_field, DEFAULT_BATCH_SIZE)
    if not _is_int(batch) or not 1 <= batch <= MAX_INPUTS_PER_REQUEST:
        raise ConfigurationError(
            f"{batch_field} must be an integer from 1 to {MAX_INPUTS_PER_REQUEST} (inputs per request), got {batch!r}."
        )
    dimensions = options.get("dimensions")
    if dimensions is None:
        return
    if not _is_int(dimensions) or dimensions < 1:
        raise ConfigurationError(f"dimensions must be a positive integer, got {dimensions!r}.")
    model = options.get("model", DEFAULT_EMBEDDING_MODEL)
    known = _KNOWN_DIMENSIONS.get(str(model).split(":", 1)[0])
    if known is None:
        return
    native, settable = known
    if not settable:
        raise ConfigurationError(f"{model} has a fixed size of {native} dimensions; leave dimensions unset.")
    if dimensions > native:
        raise ConfigurationError(f"{model} returns at most {native} dimensions, got dimensions={dimensions}.")


def _check_inputs(inputs: Any) -> None:
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise InvalidInputError(f"Texts to embed must be a list of strings, got {type(inputs).__name__}.")
    for index, text in enumerate(inputs):
        if not isinstance(text, str):
            raise InvalidInputError(f"Text {index} to embed is a {type(text).__name__}; pass strings only.")
        if not text:
            raise InvalidInputError(
                f"Text {index} to embed is an empty string, which OpenRouter refuses; leave empty texts out."
            )


def build_embedding_bodies(
    inputs: Sequence[str],
    *,
    params: Mapping[str, Any],
    attribution: Attribution,
    batch_size: int,
    extra_body: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The request bodies for ``inputs``, in order, at most ``batch_size`` texts each.

    Args:
        inputs: The texts to embed (none empty).
        params: The model's body fields (``model``, ``dimensions``, ``encoding_format``, ...).
        attribution: The attribution to send (its ``user`` already passed the identity policy; its
            ``metadata``, which ``/embeddings`` does not take, is checked and kept for the ledger, not sent).
        batch_size: Inputs per request, from 1 to :data:`MAX_INPUTS_PER_REQUEST`.
        extra_body: Fields sent as they are, last.

    Raises:
        InvalidInputError: ``inputs`` is not a list of non-empty strings.
        AttributionError: ``session_id`` or ``trace`` breaks OpenRouter's limits.
    """
    _check_inputs(inputs)
    if not 1 <= batch_size <= MAX_INPUTS_PER_REQUEST:
        raise ConfigurationError(f"batch size must be from 1 to {MAX_INPUTS_PER_REQUEST}, got {batch_size}.")
    base: dict[str, Any] = {**params, **build_attribution_fields(attribution, send_metadata=False)}
    if extra_body:
        base.update(extra_body)
    texts = list(inputs)
    return [{**base, "input": texts[start : start + batch_size]} for start in range(0, len(texts), batch_size)]


@dataclass(slots=True)
class EmbeddingResult:
    """One parsed ``POST /embeddings`` answer."""

    id: str | None
    """The generation id (usable with ``GET /generation``)."""
    model: str | None
    """The model that served the request."""
    provider: str | None
    """The upstream provider, when OpenRouter names it."""
    vectors: list[list[float]]
    """One vector per input, in input order."""
    usage: Usage | None
    """Tokens and cost of the request."""
    raw: dict[str, Any] = field(repr=False)
    """The whole response body (base64 strings left as they came)."""


def decode_base64_vector(data: str) -> list[float]:
    """Decode one base64 embedding (little-endian float32 values) into floats.

    Raises:
        InvalidResponseError: not base64, or not a whole number of float32 values.
    """
    try:
        raw = base64.b64decode(data)
    except (binascii.Error, ValueError) as err:
        raise InvalidResponseError("OpenRouter sent an embedding that is not valid base64.") from err
    if not raw or len(raw) % 4:
        raise InvalidResponseError(f"OpenRouter sent a base64 embedding of {len(raw)} bytes, not float32 values.")
    values = array("f")
    values.frombytes(raw)
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values.tolist()


def _vector(item: Any, position: int) -> list[float]:
    embedding = item.get("embedding") if isinstance(item, dict) else None
    if isinstance(embedding, str):
        return decode_base64_vector(embedding)
    if not isinstance(embedding, list) or not embedding:
        raise InvalidResponseError(f"OpenRouter sent no embedding vector at position {position}.")
    if all(type(value) is float for value in embedding):
        return embedding
    # JSON writes some values as integers (0, 1): make every one a float, refuse anything else.
    if any(isinstance(value, bool) or not isinstance(value, (int, float)) for value in embedding):
        raise InvalidResponseError(f"OpenRouter sent a non-numeric embedding at position {position}.")
    return [float(value) for value in embedding]


def _in_input_order(data: list[Any], expected: int) -> list[Any]:
    """``data`` sorted by each item's ``index`` (items without one keep their position)."""
    if len(data) != expected:
        raise InvalidResponseError(f"OpenRouter sent {len(data)} embeddings for {expected} inputs.")
    indexes = [
        item.get("index", position) if isinstance(item, dict) else position for position, item in enumerate(data)
    ]
    if indexes == list(range(expected)):
        return data
    if sorted(indexes) != list(range(expected)):
        raise InvalidResponseError("OpenRouter sent embeddings whose indexes do not match the inputs.")
    ordered: list[Any] = [None] * expected
    for index, item in zip(indexes, data, strict=True):
        ordered[index] = item
    return ordered


def parse_embeddings(body: Any, *, expected: int) -> EmbeddingResult:
    """Parse a ``POST /embeddings`` answer for ``expected`` inputs.

    Raises:
        APIError: the body carries an ``error`` object (sent with HTTP 200).
        InvalidResponseError: the body does not have the shape of an embeddings answer, has the wrong
            number of vectors, or vectors of different sizes.
    """
    if not isinstance(body, dict):
        raise InvalidResponseError(f"OpenRouter sent a {type(body).__name__} where a JSON object was expected.")
    error = body.get("error")
    if error:
        raise parse_error_object(error, generation_id=body.get("id"))
    data = body.get("data")
    if not isinstance(data, list):
        raise InvalidResponseError("OpenRouter sent an embeddings answer without a data list.")
    vectors = [_vector(item, position) for position, item in enumerate(_in_input_order(data, expected))]
    check_same_dimensions(vectors)
    return EmbeddingResult(
        id=body.get("id"),
        model=body.get("model"),
        provider=body.get("provider"),
        vectors=vectors,
        usage=parse_usage(body.get("usage")),
        raw=body,
    )


def check_same_dimensions(vectors: list[list[float]]) -> None:
    """Raise :class:`InvalidResponseError` unless every vector has the same size."""
    if vectors and any(len(vector) != len(vectors[0]) for vector in vectors):
        sizes = sorted({len(vector) for vector in vectors})
        raise InvalidResponseError(f"OpenRouter sent vectors of different sizes {sizes} for one model.")
