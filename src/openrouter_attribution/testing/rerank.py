"""The fake server's ``POST /rerank``: request validation, deterministic scores, answer bodies. No I/O.

**Validation**, as strict as OpenRouter: the body is checked against the official OpenRouter SDK's
``CreateRerankRequestBody`` (strict JSON types: ``model``, ``query`` and ``documents`` required,
documents strings or objects with ``text`` / ``image``, ``top_n`` an integer, ``provider``,
``user``, ``session_id``, ``trace``), then: ``model`` one of :data:`RERANK_CATALOG` (a chat or
embeddings model is refused; ``fake/fault-<name>`` ids pass, see
:mod:`~openrouter_attribution.testing.faults`); ``query`` not blank; 1 to :data:`MAX_DOCUMENTS`
documents (Cohere's and Voyage's documented maximum per request), none empty; ``top_n`` >= 1;
``user`` and ``session_id`` at most 256 characters.

**Scores** are deterministic: the share of the query's words (lowercased ``\\w+``) that the document
contains, so the document that shares the question's words ranks first, as with a real reranker.
Results are sorted by score (ties keep the documents' order), at most ``top_n`` of them, each with its
``index`` and ``document`` (``{"text": ...}``). ``usage``: ``total_tokens`` (the query once per
document plus the documents, one token per four characters), ``search_units`` (one per 100 documents,
Cohere's billing unit) and ``cost``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from openrouter_attribution.testing.content import estimate_tokens
from openrouter_attribution.testing.embeddings import build_input_generation
from openrouter_attribution.testing.faults import FAULT_MODEL_PREFIX
from openrouter_attribution.testing.validation import RequestValidationError, _from_pydantic, check_id_lengths

__all__ = [
    "DEFAULT_RERANK_MODEL",
    "MAX_DOCUMENTS",
    "RERANK_CATALOG",
    "RerankModelInfo",
    "RerankRequest",
    "build_rerank_body",
    "build_rerank_generation",
    "score",
    "validate_rerank_request",
]

MAX_DOCUMENTS = 1000
"""Most documents per request (Cohere's and Voyage's documented limit)."""
DOCUMENTS_PER_SEARCH_UNIT = 100
"""Documents one Cohere search unit covers."""

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class RerankModelInfo:
    """One rerank model of the local server.

    Attributes:
        id: OpenRouter model id, ``vendor/name``.
        provider_name: The upstream provider that serves it.
        search_price: US dollars per search unit, as a decimal string.
        token_price: US dollars per token, as a decimal string.
    """

    id: str
    provider_name: str
    search_price: str
    token_price: str

    def cost(self, search_units: int, tokens: int) -> float:
        """US dollars for a request (computed exactly, converted once)."""
        return float(Decimal(self.search_price) * search_units + Decimal(self.token_price) * tokens)


RERANK_CATALOG: tuple[RerankModelInfo, ...] = (
    RerankModelInfo("cohere/rerank-v3.5", "Cohere", "0.002", "0"),
    RerankModelInfo("voyage/rerank-2.5", "Voyage AI", "0", "0.00000005"),
)
"""The models ``POST /api/v1/rerank`` serves (prices per search unit or per token)."""

DEFAULT_RERANK_MODEL = RERANK_CATALOG[0].id
"""Rerank model used when a request names only a fault model (``fake/fault-<name>``)."""

_BY_ID = {model.id: model for model in RERANK_CATALOG}


class RerankRequest(NamedTuple):
    """A validated rerank request."""

    model: RerankModelInfo
    """The model that serves it (the default one for a request naming only a fault model)."""
    model_id: str
    """The model id as requested."""
    query: str
    documents: list[dict[str, str]]
    """Each document as an object (``{"text": ...}`` for a string)."""
    top_n: int
    """Results to return (at most the number of documents)."""
    tokens: int
    """Estimated tokens of the request."""

    @property
    def search_units(self) -> int:
        """Cohere search units of the request."""
        return math.ceil(len(self.documents) / DOCUMENTS_PER_SEARCH_UNIT)


def validate_rerank_request(body: Any) -> RerankRequest:
    """Validate a parsed ``POST /rerank`` body.

    Raises:
        RequestValidationError: the body is invalid; the message names the field.
    """
    if not isinstance(body, dict):
        raise RequestValidationError("", "Request body must be a JSON object")
    _validate_with_sdk(body)
    check_id_lengths(body)
    model_id = body["model"]
    model = _model(model_id)
    query = body["query"]
    if not query.strip():
        raise RequestValidationError("query", "Invalid value for 'query': must not be empty")
    documents = _documents(body["documents"])
    top_n = body.get("top_n")
    if top_n is not None and top_n < 1:
        raise RequestValidationError("top_n", "Invalid value for 'top_n': must be >= 1")
    texts = [document.get("text", "") for document in documents]
    tokens = estimate_tokens(query) * len(documents) + sum(estimate_tokens(text) for text in texts if text)
    return RerankRequest(model, model_id, query, documents, min(top_n or len(documents), len(documents)), tokens)


def _validate_with_sdk(body: dict[str, Any]) -> None:
    from openrouter.operations import CreateRerankRequestBody
    from pydantic import ValidationError

    try:
        CreateRerankRequestBody.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as err:
        raise _from_pydantic(body, err.errors()) from err


def _model(model_id: str) -> RerankModelInfo:
    if model_id.startswith(FAULT_MODEL_PREFIX):
        return _BY_ID[DEFAULT_RERANK_MODEL]
    model = _BY_ID.get(model_id.split(":", 1)[0])
    if model is None:
        raise RequestValidationError("model", f"{model_id} is not a valid rerank model ID")
    return model


def _documents(raw: list[Any]) -> list[dict[str, str]]:
    if not raw:
        raise RequestValidationError("documents", "Invalid value for 'documents': at least one document is required")
    if len(raw) > MAX_DOCUMENTS:
        raise RequestValidationError(
            "documents", f"'documents' may hold at most {MAX_DOCUMENTS} items (got {len(raw)})"
        )
    out: list[dict[str, str]] = []
    for index, item in enumerate(raw):
        document = {"text": item} if isinstance(item, str) else {k: v for k, v in item.items() if v is not None}
        if not document.get("text") and not document.get("image"):
            raise RequestValidationError(
                f"documents[{index}]", f"Invalid value for 'documents[{index}]': an empty document"
            )
        out.append(document)
    return out


def score(query: str, text: str) -> float:
    """The share of the query's words that ``text`` contains (0 to 1, six decimals)."""
    words = set(_WORD.findall(query.lower()))
    if not words:
        return 0.0
    return round(len(words & set(_WORD.findall(text.lower()))) / len(words), 6)


def build_rerank_body(request: RerankRequest, generation_id: str) -> dict[str, Any]:
    """The ``200`` body: ``id``, ``model``, ``provider``, ``results`` (best first), ``usage`` with ``cost``."""
    scores = [score(request.query, document.get("text", "")) for document in request.documents]
    order = sorted(range(len(scores)), key=lambda index: -scores[index])[: request.top_n]
    results = [
        {"index": index, "relevance_score": scores[index], "document": request.documents[index]} for index in order
    ]
    usage = {"total_tokens": request.tokens, "search_units": request.search_units,
             "cost": request.model.cost(request.search_units, request.tokens)}  # fmt: skip
    return {"id": generation_id, "model": request.model_id, "provider": request.model.provider_name,
            "results": results, "usage": usage}  # fmt: skip


def build_rerank_generation(
    request: RerankRequest,
    generation_id: str,
    created: int,
    *,
    user: str | None,
    session_id: str | None,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """The ``data`` of ``GET /generation?id=...`` for a rerank request (``api_type: "rerank"``)."""
    return build_input_generation(
        generation_id, created, model_id=request.model_id, provider_name=request.model.provider_name,
        tokens=request.tokens, cost=request.model.cost(request.search_units, request.tokens), api_type="rerank",
        upstream_prefix="rr", user=user, session_id=session_id, headers=headers,
    )  # fmt: skip
