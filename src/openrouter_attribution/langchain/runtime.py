"""Read the LangGraph runtime of the run that makes a call (glue only, LangGraph never imported).

LangGraph 1.x hands per-run data to graphs through runtime context:
``graph.invoke(..., context=Context(user_id=...))`` for ``StateGraph(State, context_schema=Context)``
and ``create_agent(model, tools, context_schema=Context)``. Nodes, middleware and tools read it as
``runtime.context`` (``Runtime[Context]``, ``ToolRuntime[Context]``) or through
``langgraph.runtime.get_runtime()``.

LangGraph keeps that runtime in the run config, under ``config["configurable"]["__pregel_runtime"]``
(``langgraph._internal._constants.CONFIG_KEY_RUNTIME``). Every runnable started inside a graph task
inherits the task's config, so a model called from a node, from a tool, from a subgraph (whose
runtime LangGraph merges with the parent's) or from ``create_agent``'s model step finds it in its
own run config, in every call style and stream mode. ``get_runtime()`` reads the same entry, but of
the ambient config only; reading the config of the call itself is just as exact and never needs
``langgraph`` to be imported. When the call was given an explicit config with its own
``configurable`` (which replaces the inherited one), the runtime of the enclosing graph task is
still used.

LangGraph Platform (LangGraph Server) puts the identity of the authenticated user of a run in
``configurable["langgraph_auth_user_id"]`` (the empty string for an unauthenticated request) and the
user object in ``configurable["langgraph_auth_user"]``. The identity is all attribution needs: the
object's ``identity`` is that same string.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["AUTH_USER_ID_KEY", "RUNTIME_KEY", "authenticated_user", "context_value", "runtime_context"]

RUNTIME_KEY = "__pregel_runtime"
"""Where LangGraph keeps the ``Runtime`` of a run in ``config["configurable"]``."""

AUTH_USER_ID_KEY = "langgraph_auth_user_id"
"""Where LangGraph Platform puts the authenticated user's identity in ``config["configurable"]``."""


def runtime_context(*configurables: Mapping[str, Any]) -> Any:
    """The runtime context (``Runtime.context``) of the first of ``configurables`` that holds a
    LangGraph runtime, or ``None``.

    Nothing is imported: when the application has not imported LangGraph there can be no runtime.
    """
    if "langgraph" not in sys.modules:
        return None
    for configurable in configurables:
        runtime = configurable.get(RUNTIME_KEY)
        if runtime is not None:
            # LangGraph itself adopts any object with a ``context`` here (see its _coerce_parent_runtime).
            return getattr(runtime, "context", None)
    return None


def context_value(context: Any, key: str) -> Any:
    """``key`` of a runtime context: a mapping key (dict, TypedDict) or an attribute (dataclass,
    pydantic model, any object); ``None`` when absent."""
    if context is None:
        return None
    if isinstance(context, Mapping):
        return context.get(key)
    return getattr(context, key, None)


def authenticated_user(*configurables: Mapping[str, Any]) -> Any:
    """The LangGraph Platform identity in the first of ``configurables`` that has the key, else ``None``.

    The empty string (an unauthenticated request, or auth turned off) counts as no identity.
    """
    for configurable in configurables:
        if AUTH_USER_ID_KEY in configurable:
            identity = configurable[AUTH_USER_ID_KEY]
            return None if identity is None or identity == "" else identity
    return None
