"""Build the body of ``POST /rerank`` and parse its answer.

The request, as the official OpenRouter SDK's ``CreateRerankRequestBody`` lists it
(https://openrouter.ai/docs/api/api-reference/rerank/create-rerank): ``model`` (e.g.
``cohere/rerank-v3.5``), ``query``, ``documents`` (strings, or objects with ``text`` and/or
``image``; this library sends strings), ``top_n``, ``provider``, plus ``user``, ``session_id`` and
``trace``, which OpenRouter forwards to Broadcast and private logging and never to the provider.
``metadata`` is not a rerank field, so an attribution's ``metadata`` is not sent with rerank.

The answer is ``{"id", "model", "provider", "results": [{"index", "relevance_score", "document":
{"text"}}], "usage": {"total_tokens", "search_units", "cost"}}``, results sorted by relevance, at most
``top_n`` of them, each naming its document by its position in the request.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.errors import ConfigurationError, InvalidInputError, InvalidResponseError
from openrouter_attribution.wire.errors import parse_error_object
from openrouter_attribution.wire.request import build_attribution_fields
from openrouter_attribution.wire.response import Usage, parse_usage

__all__ = ["DEFAULT_RERANK_MODEL", "DEFAULT_TOP_N", "RerankResult", "build_rerank_body", "check_top_n", "parse_rerank"]

DEFAULT_RERANK_MODEL = "cohere/rerank-v3.5"
"""The model of OpenRouter's own rerank examples."""

DEFAULT_TOP_N = 3
"""Documents kept by default (LangChain's rerankers keep 3)."""


def check_top_n(top_n: Any, *, where: str = "top_n") -> None:
    """Raise :class:`ConfigurationError` unless ``top_n`` is ``None`` (rank every document) or an integer >= 1."""
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise ConfigurationError(
            f"{where} must be a whole number >= 1 (documents to keep), or None to rank every document; got {top_n!r}."
        )


def _check_input(query: Any, documents: Any) -> None:
    if not isinstance(query, str) or not query.strip():
        kind = "an empty string" if isinstance(query, str) else f"a {type(query).__name__}"
        raise InvalidInputError(f"The rerank query is {kind}; pass the question the documents are ranked for.")
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise InvalidInputError(f"Documents to rerank must be a list of strings, got {type(documents).__name__}.")
    if not documents:
        raise InvalidInputError("No documents to rerank; call rerank with at least one document.")
    for index, text in enumerate(documents):
        if not isinstance(text, str):
            raise InvalidInputError(f"Document {index} to rerank is a {type(text).__name__}; pass strings only.")
        if not text:
            raise InvalidInputError(
                f"Document {index} to rerank is an empty string, which rerankers refuse; leave empty documents out."
            )


def build_rerank_body(
    query: str,
    documents: Sequence[str],
    *,
    params: Mapping[str, Any],
    attribution: Attribution,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The request body that ranks ``documents`` for ``query``.

    Args:
        query: The question (not empty).
        documents: The texts to rank (at least one, none empty).
        params: The model's body fields (``model``, ``top_n``, ``provider``); a ``top_n`` above the number
            of documents is sent as that number.
        attribution: The attribution to send (``user`` already through the identity policy; its ``metadata`` is
            checked and kept for the ledger, not sent).
        extra_body: Fields sent as they are, last.

    Raises:
        InvalidInputError: an empty query, no documents, or a document that is empty or not a string.
        ConfigurationError: ``top_n`` is below 1.
        AttributionError: ``session_id`` or ``trace`` breaks OpenRouter's limits.
    """
    _check_input(query, documents)
    top_n = params.get("top_n")
    check_top_n(top_n)
    body: dict[str, Any] = {**params, **build_attribution_fields(attribution, send_metadata=False), "query": query,
                            "documents": list(documents)}  # fmt: skip
    if top_n is not None and top_n > len(documents):
        # Fewer documents than top_n (a small retrieval): ask for all of them rather than for more than
        # there are, which the rerankers' APIs do not all accept.
        body["top_n"] = len(documents)
    if extra_body:
        body.update(extra_body)
    return body


@dataclass(slots=True)
class RerankResult:
    """One parsed ``POST /rerank`` answer."""

    id: str | None
    """The generation id."""
    model: str | None
    """The model that served the request."""
    provider: str | None
    """The upstream provider, when OpenRouter names it."""
    ranked: list[tuple[int, float]]
    """``(document index, relevance score)``, most relevant first."""
    usage: Usage | None
    """Tokens (as ``prompt_tokens``: a reranker reads, it writes nothing) and cost of the request."""
    raw: dict[str, Any] = field(repr=False)
    """The whole response body."""


def _ranked(results: list[Any], expected: int) -> list[tuple[int, float]]:
    ranked: list[tuple[int, float]] = []
    seen: set[int] = set()
    for position, item in enumerate(results):
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < expected or index in seen:
            raise InvalidResponseError(f"OpenRouter sent rerank result {position} for no document of the request.")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InvalidResponseError(f"OpenRouter sent rerank result {position} without a numeric relevance_score.")
        seen.add(index)
        ranked.append((index, float(score)))
    ranked.sort(key=lambda pair: -pair[1])  # stable: equal scores keep the order they came in
    return ranked


def parse_rerank(body: Any, *, expected: int) -> RerankResult:
    """Parse a ``POST /rerank`` answer for a request of ``expected`` documents.

    Raises:
        APIError: the body carries an ``error`` object (sent with HTTP 200).
        InvalidResponseError: the body does not have the shape of a rerank answer, or a result names a
            document the request did not have.
    """
    if not isinstance(body, dict):
        raise InvalidResponseError(f"OpenRouter sent a {type(body).__name__} where a JSON object was expected.")
    error = body.get("error")
    if error:
        raise parse_error_object(error, generation_id=body.get("id"))
    results = body.get("results")
    if not isinstance(results, list):
        raise InvalidResponseError("OpenRouter sent a rerank answer without a results list.")
    usage = parse_usage(body.get("usage"))
    if usage is not None and usage.prompt_tokens is None and usage.total_tokens is not None:
        usage = dataclasses.replace(usage, prompt_tokens=usage.total_tokens)
    return RerankResult(id=body.get("id"), model=body.get("model"), provider=body.get("provider"),
                        ranked=_ranked(results, expected), usage=usage, raw=body)  # fmt: skip
