"""Map the LangChain run tree to OpenRouter's ``trace`` object (glue only).

OpenRouter forwards ``trace`` to its broadcast destinations (Langfuse, LangSmith, ...), with the known
keys ``trace_id``, ``span_name``, ``generation_name`` and ``parent_span_id``
(https://openrouter.ai/docs/guides/features/broadcast). Filling them from LangChain's run ids makes a
trace there line up with the same run in LangSmith or Langfuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun

__all__ = ["run_trace"]


def _root_run_id(run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun) -> Any:
    """The id of the root run, as known to a tracer attached to this run (LangSmith, ...)."""
    for handler in run_manager.handlers:
        run_map = getattr(handler, "run_map", None)
        if run_map:
            run = run_map.get(str(run_manager.run_id))
            trace_id = getattr(run, "trace_id", None)
            if trace_id is not None:
                return trace_id
    return None


def run_trace(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun,
    run_name: str,
    configured: Mapping[str, Any] | bool,
) -> dict[str, Any]:
    """The ``trace`` object for this model run.

    ``trace_id`` is the root run id when a tracer knows it, otherwise the parent run id (the
    chain or agent step that called the model), otherwise this run's own id. Keys set in a
    ``configured`` dict are kept as they are.
    """
    parent = run_manager.parent_run_id
    root = _root_run_id(run_manager) or parent or run_manager.run_id
    trace: dict[str, Any] = {"trace_id": str(root), "span_name": run_name, "generation_name": run_name}
    if parent is not None:
        trace["parent_span_id"] = str(parent)
    if isinstance(configured, Mapping):
        trace.update(configured)
    return trace
