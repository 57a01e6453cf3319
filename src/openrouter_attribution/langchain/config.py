"""Read the attribution layers of a LangChain call (glue only).

One reader for every LangChain class of this library: :func:`call_layers` turns the run config of
the current call (and, inside a LangGraph run, its runtime context and LangGraph Platform identity)
into the ``authenticated``, ``invocation``, ``runtime`` and ``fallback`` layers of
:func:`openrouter_attribution.attribution.resolve`. The ``explicit`` layer (call keywords) is the
caller's; ``context`` and ``default`` are added by the core.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from openrouter_attribution.attribution import Attribution
from openrouter_attribution.langchain.runtime import (
    AUTH_USER_ID_KEY,
    authenticated_user,
    context_value,
    runtime_context,
)

__all__ = ["RUN_CONFIG", "CallLayers", "call_layers", "current_run_config", "run_attribution", "searched_places"]

RUN_CONFIG: contextvars.ContextVar[RunnableConfig | None] = contextvars.ContextVar(
    "openrouter_attribution_run_config", default=None
)
"""The run config of the ChatOpenRouter invocation being served. Its public entry points set it,
because LangChain does not hand ``configurable`` down to ``_generate`` / ``_stream`` or to callbacks."""

_NOTHING: Mapping[str, Any] = {}


def current_run_config() -> RunnableConfig | None:
    """The config of the invocation being served, else the one runnables set for their children."""
    return RUN_CONFIG.get() or var_child_runnable_config.get()


RUNTIME_METADATA_KEY = "openrouter_metadata"
"""The LangGraph runtime context's attribute (or key) holding the run's metadata, e.g. ``{"tenant": "acme"}``."""


class CallLayers(NamedTuple):
    """The LangChain attribution layers of one call, by :data:`~openrouter_attribution.attribution.LAYERS` name."""

    authenticated: Attribution | None
    """LangGraph Platform's ``configurable["langgraph_auth_user_id"]`` (user only)."""
    invocation: Attribution | None
    """``configurable[user_id_key]``, then ``metadata[user_id_key]`` / ``langfuse_user_id`` (and the
    session keys the same way), plus the run-tree ``trace``."""
    runtime: Attribution | None
    """The LangGraph runtime context's ``user_id_key`` / ``session_id_key`` and ``openrouter_metadata``
    (attribute or key)."""
    fallback: Attribution | None
    """LangGraph's ``thread_id`` as the session."""

    def as_layers(self) -> dict[str, Attribution | None]:
        """The layers as keywords for :func:`~openrouter_attribution.attribution.resolve` or ``Invoker.attribute``."""
        return self._asdict()


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def _layer(
    user: Any, session: Any, trace: Mapping[str, Any] | None = None, metadata: Mapping[str, str] | None = None
) -> Attribution | None:
    if user is None and session is None and trace is None and metadata is None:
        return None
    return Attribution(user=user, session_id=session, trace=trace, metadata=metadata)


def call_layers(
    *,
    user_id_key: str,
    session_id_key: str,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    trace: Mapping[str, Any] | None = None,
) -> CallLayers:
    """All LangChain attribution layers of the current call, ``explicit`` excluded.

    Args:
        user_id_key: Key (or runtime context attribute) of the end-user id.
        session_id_key: Key (or runtime context attribute) of the session id.
        config: The call's run config; defaults to :func:`current_run_config`.
        metadata: Run metadata to use instead of ``config["metadata"]`` (callbacks receive it apart).
        trace: A ``trace`` object for the invocation layer.

    Returns:
        The ``authenticated``, ``invocation``, ``runtime`` and ``fallback`` layers. The LangGraph
        runtime and Platform identity come from the call's ``configurable``, else from the enclosing
        graph task's (a call given its own ``configurable`` replaces the inherited one).
    """
    if config is None:
        config = current_run_config()
    configurable: Mapping[str, Any] = (config or _NOTHING).get("configurable") or _NOTHING
    if metadata is None:
        metadata = (config or _NOTHING).get("metadata") or _NOTHING
    enclosing = var_child_runnable_config.get()
    outer: Mapping[str, Any] = (enclosing or _NOTHING).get("configurable") or _NOTHING
    scopes = (configurable,) if outer is configurable else (configurable, outer)

    identity = authenticated_user(*scopes)
    user = _first(configurable, user_id_key)
    if user is None:
        user = _first(metadata, user_id_key, "langfuse_user_id")
    session = _first(configurable, session_id_key)
    if session is None:
        session = _first(metadata, session_id_key, "langfuse_session_id")
    context = runtime_context(*scopes)
    thread = _first(configurable, "thread_id")
    if thread is None:
        thread = _first(metadata, "thread_id")
    return CallLayers(
        authenticated=None if identity is None else Attribution(user=identity),
        invocation=_layer(user, session, trace),
        runtime=None
        if context is None
        else _layer(
            context_value(context, user_id_key),
            context_value(context, session_id_key),
            metadata=context_value(context, RUNTIME_METADATA_KEY),
        ),
        fallback=None if thread is None else Attribution(session_id=str(thread)),
    )


@functools.lru_cache(maxsize=64)
def searched_places(user_id_key: str) -> Mapping[str, tuple[str, ...]]:
    """Where :func:`call_layers` looks for a user, per layer, for the ``MissingUserError`` message."""
    return {
        "explicit": ("the call's user= argument (or .bind(user=...))",),
        "authenticated": (f"config['configurable']['{AUTH_USER_ID_KEY}'] (LangGraph Platform)",),
        "invocation": (
            f"config['configurable']['{user_id_key}']",
            f"config['metadata']['{user_id_key}']",
            "config['metadata']['langfuse_user_id']",
        ),
        "runtime": (f"the LangGraph runtime context's '{user_id_key}' (context=...)",),
    }


def run_attribution(invoker: Any, *, user_id_key: str, session_id_key: str) -> Attribution:
    """The attribution, as sent, of a call that takes no keywords (embeddings, rerank), from the run it runs in.

    LangChain's ``Embeddings`` and ``BaseDocumentCompressor`` methods take no config, but a runnable that
    runs inside a chain (a retriever, a tool) publishes its config for its children, so a call made inside
    ``retriever.invoke`` in a chain sees the chain's configurable / metadata / runtime context.

    Raises:
        MissingUserError: no user resolved while ``require_user=True``.
        UserIdError: an id is invalid or carries personal data the policy rejects.
    """
    layers = call_layers(user_id_key=user_id_key, session_id_key=session_id_key)
    # These calls take no per-call user= (LangChain's interfaces have no keywords for them).
    searched = {layer: places for layer, places in searched_places(user_id_key).items() if layer != "explicit"}
    return invoker.attribute(searched=searched, **layers.as_layers())
