"""Request handling of the fake server: from a recorded request to a reply, without socket I/O.

:func:`handle` authenticates, routes and answers; the HTTP layer
(:mod:`~openrouter_attribution.testing.server`) only reads requests and writes
the :data:`Reply` it gets back. Sleeping (``latency``, ``slow-first-byte``)
happens here, on the connection's own thread, with no lock held.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from openrouter_attribution.testing.catalog import DEFAULT_MODEL, ModelInfo, embedding_models_payload
from openrouter_attribution.testing.content import Completion, last_user_text, message_tokens, plan_completion
from openrouter_attribution.testing.embeddings import (
    build_embeddings_body,
    build_embeddings_generation,
    validate_embeddings_request,
)
from openrouter_attribution.testing.faults import (
    FAULT_MODEL_PREFIX,
    Fault,
    UnknownFaultError,
    fault_from_headers,
    fault_from_models,
)
from openrouter_attribution.testing.keys import is_management_path, management_reply, reply_cost
from openrouter_attribution.testing.recording import (
    CHAT_PATH,
    EMBEDDINGS_PATH,
    RERANK_PATH,
    RESPONSES_PATH,
    RecordedRequest,
)
from openrouter_attribution.testing.replies import (
    DropReply,
    JsonReply,
    RawReply,
    Reply,
    StreamReply,
    error_reply,
)
from openrouter_attribution.testing.rerank import build_rerank_body, build_rerank_generation, validate_rerank_request
from openrouter_attribution.testing.responses import (
    SSE_COMMENT,
    SSE_DONE,
    Envelope,
    Usage,
    build_chunks,
    build_completion_body,
    build_error_body,
    build_failed_completion_body,
    build_generation,
    build_stream_error_chunk,
    build_usage,
    encode_json,
    new_generation_id,
    sse_event,
)
from openrouter_attribution.testing.responses_api import responses_reply, to_chat_body, validate_responses_request
from openrouter_attribution.testing.state import ServerState
from openrouter_attribution.testing.validation import (
    RequestValidationError,
    unknown_model_ids,
    validate_chat_request,
)

__all__ = ["handle"]

API_PREFIX = "/api/v1"
_OWN_CATALOGS = (EMBEDDINGS_PATH, RERANK_PATH)
_GOOD_CHUNKS_BEFORE_FAULT = 2


def handle(state: ServerState, request: RecordedRequest) -> Reply:
    """Answer one request (already recorded): authenticate, route, check the model ids, reply.

    Every chat ``POST`` body that names models (``model``, ``models``) is checked against the server's
    catalog before its route runs: unknown ids are answered 400 as OpenRouter answers them
    (``{"error": {"message": "<id> is not a valid model ID", "code": 400}}``). ``POST /embeddings``
    and ``POST /rerank`` check their model against their own catalogs the same way.
    """
    token = _bearer(request)
    if token is None:
        return error_reply(401, "No auth credentials found")
    keys = state.keys
    if is_management_path(request.path):
        if not _same(token, keys.management_key):
            return error_reply(401, "A management key is required for this endpoint")
        return JsonReply(*management_reply(keys, request.method, request.path, request.query, request.body))
    entry = None
    if not _same(token, state.api_key):
        if _same(token, keys.management_key):
            return error_reply(401, "Management keys cannot call models; use an API key")
        entry = keys.find(token)
        if entry is None:
            return error_reply(401, "User not found.")
        if request.path == f"{API_PREFIX}/key":
            return JsonReply(200, {"data": keys.current(entry)})
        refusal = keys.refusal(entry) if request.method == "POST" else None
        if refusal is not None:
            status, message, metadata = refusal
            return JsonReply(status, build_error_body(status, message, metadata))
    routes = _ROUTES.get(request.path)
    if routes is None:
        return error_reply(404, f"Not Found: {request.method} {request.path}")
    route = routes.get(request.method)
    if route is None:
        return error_reply(405, f"Method {request.method} not allowed on {request.path}")
    if request.method == "POST" and isinstance(request.body, dict) and request.path not in _OWN_CATALOGS:
        # Embeddings and rerank models are catalogs of their own: their routes check their ids against them.
        unknown = unknown_model_ids(request.body, state.catalog)
        if unknown:
            return JsonReply(400, {"error": {"message": f"{unknown[0]} is not a valid model ID", "code": 400}})
    reply = route(state, request)
    if entry is not None and isinstance(reply, JsonReply | StreamReply):
        # The key meters what its calls cost, as OpenRouter's per-key usage and limits do.
        events = reply.events if isinstance(reply, StreamReply) else None
        keys.charge(entry, reply_cost(getattr(reply, "status", 200), getattr(reply, "payload", None), events))
    return reply


def _bearer(request: RecordedRequest) -> str | None:
    """The request's bearer token (``""`` for another scheme), ``None`` without an Authorization header."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _same(token: str, key: str) -> bool:
    return hmac.compare_digest(token.encode(), key.encode())


def _models(state: ServerState, request: RecordedRequest) -> Reply:
    return JsonReply(200, state.catalog.payload())


def _generation(state: ServerState, request: RecordedRequest) -> Reply:
    generation_id = request.query.get("id")
    if not generation_id:
        return error_reply(400, "Missing required query parameter: id")
    if state.generation_latency > 0:
        time.sleep(state.generation_latency)
    generation = state.generation(generation_id)
    if generation is None:
        return error_reply(404, f"Generation {generation_id} not found")
    return JsonReply(200, {"data": generation})


def _key(state: ServerState, request: RecordedRequest) -> Reply:
    usage = state.total_cost()
    label = f"{state.api_key[:8]}...{state.api_key[-3:]}"
    data = {
        "label": label,
        "limit": None,
        "limit_remaining": None,
        "limit_reset": None,
        "usage": usage,
        "usage_daily": usage,
        "usage_weekly": usage,
        "usage_monthly": usage,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "include_byok_in_limit": False,
        "is_free_tier": False,
        "is_management_key": False,
        "is_provisioning_key": False,
        "allowed_data_regions": ["global"],
        "budgets": [],
        "effective_budget": None,
        "creator_user_id": None,
        "organization_id": None,
        "workspace_id": None,
        "expires_at": None,
        "free_model_daily_requests": {"limit": 1000, "remaining": 1000, "used": 0},
        "rate_limit": {
            "requests": 1000,
            "interval": "10s",
            "note": "This field is deprecated and safe to ignore.",
        },
    }
    return JsonReply(200, {"data": data})


def _chat(state: ServerState, request: RecordedRequest) -> Reply:
    return _serve(state, request, _chat_view, _chat_reply)


def _responses(state: ServerState, request: RecordedRequest) -> Reply:
    """``POST /responses``: validated, read as the equivalent chat request, answered in Responses shapes."""
    return _serve(state, request, _responses_view, _responses_reply)


def _chat_view(body: dict[str, Any]) -> dict[str, Any]:
    validate_chat_request(body)
    return body


def _responses_view(body: dict[str, Any]) -> dict[str, Any]:
    validate_responses_request(body)
    return to_chat_body(body)


def _serve(
    state: ServerState,
    request: RecordedRequest,
    view: Callable[[dict[str, Any]], dict[str, Any]],
    reply: _Answer,
) -> Reply:
    """Validate (``view`` returns the request as a chat body), pick the fault, answer with ``reply``."""
    body = request.body
    if not isinstance(body, dict):
        return _no_body(request)
    try:
        body = view(body)
    except RequestValidationError as err:
        return error_reply(400, err.message)
    candidates = _candidate_models(body)
    try:
        fault = (
            fault_from_headers(request.headers) or fault_from_models(candidates, request.headers) or state.faults.pop()
        )
    except (UnknownFaultError, ValueError) as err:
        return error_reply(400, str(err))
    requested = next((m for m in candidates if not m.startswith(FAULT_MODEL_PREFIX)), None)
    # Only fault ids: the fault decides, and a successful answer comes from the default model.
    model = state.catalog.get(requested or DEFAULT_MODEL)
    assert model is not None, "handle() checked every model id against the catalog"
    if state.latency > 0:
        time.sleep(state.latency)
    if fault is not None:
        early = _early_fault(fault, requested or candidates[0], body)
        if early is not None:
            return early
    return _complete(state, request, body, model, fault, reply)


def _candidate_models(body: dict[str, Any]) -> list[str]:
    """Return the models to try in order: ``model`` first, then the ``models`` fallbacks."""
    candidates = [body["model"]] if body.get("model") else []
    candidates += [m for m in body.get("models") or [] if m not in candidates]
    return candidates or [DEFAULT_MODEL]


def _early_fault(fault: Fault, served: str, body: dict[str, Any]) -> Reply | None:
    """Apply the faults that act before generation starts; ``None`` lets the request proceed."""
    if fault.status is not None:
        error = fault.error_body(served, last_user_text(body["messages"]))
        return JsonReply(fault.status, {"error": error}, fault.error_headers())
    if fault.name == "slow-first-byte":
        time.sleep(fault.delay_ms / 1000)
    if fault.name == "drop-connection" and not body.get("stream"):
        return DropReply()
    if fault.name == "error-body":
        return JsonReply(200, {"error": fault.error_body(served, last_user_text(body["messages"]))})
    if fault.name == "empty-body":
        return StreamReply([]) if body.get("stream") else RawReply(200, b"", "application/json")
    return None


def _complete(
    state: ServerState, request: RecordedRequest, body: dict[str, Any], model: ModelInfo, fault: Fault | None,
    reply: _Answer,
) -> Reply:  # fmt: skip
    completion = plan_completion(body, model)
    usage = _usage(state, body, completion, model)
    envelope = Envelope(model=model.id, provider=model.provider_name)
    streamed = bool(body.get("stream"))
    failed = fault is not None and fault.name == "mid-stream-error"
    state.store_generation(
        build_generation(
            envelope,
            usage,
            completion,
            user=body.get("user"),
            session_id=body.get("session_id") or request.headers.get("x-session-id"),
            headers=request.headers,
            streamed=streamed,
            failed=failed,
        ),
        received=request.time,
    )
    return reply(envelope, request, completion, usage, fault, {"X-Generation-Id": envelope.id})


def _chat_reply(
    envelope: Envelope, request: RecordedRequest, completion: Completion, usage: Usage, fault: Fault | None,
    headers: dict[str, str],
) -> Reply:  # fmt: skip
    if request.body.get("stream"):
        return _stream_reply(envelope, completion, usage, fault, headers)
    return _plain_reply(envelope, completion, usage, fault, headers)


def _responses_reply(
    envelope: Envelope, request: RecordedRequest, completion: Completion, usage: Usage, fault: Fault | None,
    headers: dict[str, str],
) -> Reply:  # fmt: skip
    return responses_reply(envelope, request.body, completion, usage, fault, headers)


_Answer = Callable[[Envelope, RecordedRequest, Completion, Usage, "Fault | None", dict[str, str]], Reply]


def _plain_reply(
    envelope: Envelope, completion: Completion, usage: Usage, fault: Fault | None, headers: dict[str, str]
) -> Reply:
    if fault is not None and fault.name == "mid-stream-error":
        content = completion.content or ""
        error = fault.stream_error(envelope.model)
        return JsonReply(
            200, build_failed_completion_body(envelope, content[: len(content) // 2], error, usage), headers
        )
    body = build_completion_body(envelope, completion, usage)
    if fault is not None and fault.name == "malformed-chunk":
        return RawReply(200, encode_json(body)[:-7] + b"<<not json", "application/json", headers)
    if fault is not None and fault.name == "truncated-stream":
        data = encode_json(body)
        return RawReply(200, data[: len(data) // 2], "application/json", headers)
    return JsonReply(200, body, headers)


def _usage(state: ServerState, body: dict[str, Any], completion: Completion, model: ModelInfo) -> Usage:
    messages = body["messages"]
    per_message = [message_tokens(m) for m in messages]
    tools_tokens = message_tokens({"content": encode_json(body["tools"]).decode()}) if body.get("tools") else 0
    # Caches live at the provider, per model: the sticky key is (user, model).
    cache_key = f"{body.get('user') or ''}\x00{model.id}"
    cached_messages = state.cache.lookup_and_store(cache_key, messages)
    return build_usage(
        model,
        sum(per_message) + tools_tokens,
        sum(per_message[:cached_messages]),
        completion,
    )


def _stream_reply(
    envelope: Envelope, completion: Completion, usage: Usage, fault: Fault | None, headers: dict[str, str]
) -> StreamReply:
    chunks = [sse_event(chunk) for chunk in build_chunks(envelope, completion, usage)]
    # Keep-alive comments first and once more mid-stream, as OpenRouter sends them while the model works.
    events = [SSE_COMMENT, chunks[0], SSE_COMMENT, *chunks[1:]]
    if fault is None:
        return StreamReply([*events, SSE_DONE], headers)
    good = chunks[:_GOOD_CHUNKS_BEFORE_FAULT]
    if fault.name == "mid-stream-error":
        error_chunk = build_stream_error_chunk(envelope, fault.stream_error(envelope.model))
        return StreamReply([SSE_COMMENT, *good, sse_event(error_chunk)], headers)
    if fault.name == "malformed-chunk":
        broken = b'data: {"id": "' + envelope.id.encode() + b'", "choices": [\n\n'
        return StreamReply([SSE_COMMENT, good[0], broken, SSE_DONE], headers)
    if fault.name == "drop-connection":
        # Two chunks (and the two comments around the first) reach the client; the body never ends.
        return StreamReply(events, headers, drop_after=2 + _GOOD_CHUNKS_BEFORE_FAULT)
    if fault.name == "truncated-stream":
        # Two content chunks, then a clean end of the body: no finish_reason, no usage, no [DONE].
        return StreamReply([SSE_COMMENT, *good], headers)
    return StreamReply([*events, SSE_DONE], headers)


def _embeddings(state: ServerState, request: RecordedRequest) -> Reply:
    """``POST /embeddings``: validated, faults applied as for chat, answered and stored as a generation."""
    body = request.body
    if not isinstance(body, dict):
        return _no_body(request)
    try:
        embedding = validate_embeddings_request(body)
    except RequestValidationError as err:
        return error_reply(400, err.message)
    served = embedding.model.id if embedding.model_id.startswith(FAULT_MODEL_PREFIX) else embedding.model_id
    embedding = embedding._replace(model_id=served)
    first = next((item for item in embedding.inputs if isinstance(item, str)), "")
    return _input_reply(
        state, request, requested=body["model"], served=served, text=first,
        generation=lambda gid, created, **ids: build_embeddings_generation(embedding, gid, created, **ids),
        answer=lambda gid: build_embeddings_body(embedding, gid),
    )  # fmt: skip


def _rerank(state: ServerState, request: RecordedRequest) -> Reply:
    """``POST /rerank``: validated, faults applied as for chat, answered and stored as a generation."""
    body = request.body
    if not isinstance(body, dict):
        return _no_body(request)
    try:
        rerank = validate_rerank_request(body)
    except RequestValidationError as err:
        return error_reply(400, err.message)
    served = rerank.model.id if rerank.model_id.startswith(FAULT_MODEL_PREFIX) else rerank.model_id
    rerank = rerank._replace(model_id=served)
    return _input_reply(
        state, request, requested=body["model"], served=served, text=rerank.query,
        generation=lambda gid, created, **ids: build_rerank_generation(rerank, gid, created, **ids),
        answer=lambda gid: build_rerank_body(rerank, gid),
    )  # fmt: skip


def _no_body(request: RecordedRequest) -> Reply:
    """OpenRouter's 400 for a request without a JSON object body."""
    return error_reply(400, "Request body must be a JSON object" if request.raw_body else "Request body is required")


def _input_reply(
    state: ServerState,
    request: RecordedRequest,
    *,
    requested: str,
    served: str,
    text: str,
    generation: Callable[..., dict[str, Any]],
    answer: Callable[[str], dict[str, Any]],
) -> Reply:
    """Answer a validated embeddings or rerank request (one JSON answer, no stream).

    A queued fault (``inject_fault``) is taken by the next chat, embeddings *or* rerank request. Faults
    that only make sense mid-generation map to a JSON answer: ``mid-stream-error`` is a 200 body holding
    an ``error`` object, ``malformed-chunk`` a 200 body that is not JSON, ``truncated-stream`` the first
    half of the answer.
    """
    try:
        fault = fault_from_headers(request.headers) or fault_from_models([requested], request.headers) or (
            state.faults.pop())  # fmt: skip
    except (UnknownFaultError, ValueError) as err:
        return error_reply(400, str(err))
    if state.latency > 0:
        time.sleep(state.latency)
    if fault is not None:
        early = _early_fault(fault, served, {"messages": [{"role": "user", "content": text}]})
        if early is not None:
            return early
    generation_id = new_generation_id()
    headers = {"X-Generation-Id": generation_id}
    if fault is not None and fault.name == "mid-stream-error":
        return JsonReply(200, {"id": generation_id, "error": fault.stream_error(served)}, headers)
    session_id = request.body.get("session_id") or request.headers.get("x-session-id")
    state.store_generation(generation(generation_id, int(time.time()), user=request.body.get("user"),
                                      session_id=session_id, headers=request.headers),
                           received=request.time)  # fmt: skip
    body = answer(generation_id)
    if fault is not None and fault.name == "malformed-chunk":
        return RawReply(200, encode_json(body)[:-7] + b"<<not json", "application/json", headers)
    if fault is not None and fault.name == "truncated-stream":
        data = encode_json(body)
        return RawReply(200, data[: len(data) // 2], "application/json", headers)
    return JsonReply(200, body, headers)


def _embedding_models(state: ServerState, request: RecordedRequest) -> Reply:
    return JsonReply(200, embedding_models_payload())


_Route = Callable[[ServerState, RecordedRequest], Reply]
_ROUTES: dict[str, dict[str, _Route]] = {
    CHAT_PATH: {"POST": _chat},
    RESPONSES_PATH: {"POST": _responses},
    EMBEDDINGS_PATH: {"POST": _embeddings},
    RERANK_PATH: {"POST": _rerank},
    f"{API_PREFIX}/embeddings/models": {"GET": _embedding_models},
    f"{API_PREFIX}/models": {"GET": _models},
    f"{API_PREFIX}/generation": {"GET": _generation},
    f"{API_PREFIX}/key": {"GET": _key},
}
