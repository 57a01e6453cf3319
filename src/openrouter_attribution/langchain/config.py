"""Read attribution from a LangChain run config (glue only): the ``invocation`` and ``fallback`` layers."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from openrouter_attribution.attribution import Attribution

__all__ = ["RUN_CONFIG", "config_layers", "current_run_config"]

RUN_CONFIG: contextvars.ContextVar[RunnableConfig | None] = contextvars.ContextVar(
    "openrouter_attribution_run_config", default=None
)
"""The run config of the ChatOpenRouter invocation being served. Its public entry points set it,
because LangChain does not hand ``configurable`` down to ``_generate`` / ``_stream`` or to callbacks."""


def current_run_config() -> RunnableConfig | None:
    """The config of the invocation being served, else the one runnables set for their children."""
    return RUN_CONFIG.get() or var_child_runnable_config.get()


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def config_layers(
    config: Mapping[str, Any] | None,
    *,
    user_id_key: str,
    session_id_key: str,
    metadata: Mapping[str, Any] | None = None,
    trace: Mapping[str, Any] | None = None,
) -> tuple[Attribution | None, Attribution | None]:
    """The ``invocation`` layer (``configurable``, then ``metadata``, then Langfuse's keys) and the
    ``fallback`` layer (LangGraph's ``thread_id`` as the session).

    Args:
        config: The run config, if any.
        user_id_key: Key of the end-user id.
        session_id_key: Key of the session id.
        metadata: Run metadata to use instead of ``config["metadata"]`` (callbacks receive it apart).
        trace: A ``trace`` object for the invocation layer.
    """
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}
    if metadata is None:
        metadata = (config or {}).get("metadata") or {}
    user = _first(configurable, user_id_key)
    if user is None:
        user = _first(metadata, user_id_key, "langfuse_user_id")
    session = _first(configurable, session_id_key)
    if session is None:
        session = _first(metadata, session_id_key, "langfuse_session_id")
    invocation = None
    if user is not None or session is not None or trace is not None:
        invocation = Attribution(user=user, session_id=session, trace=trace)
    thread = _first(configurable, "thread_id")
    if thread is None:
        thread = _first(metadata, "thread_id")
    fallback = Attribution(session_id=str(thread)) if thread is not None else None
    return invocation, fallback
