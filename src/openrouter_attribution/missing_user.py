"""A call that resolved no end-user: refused (``require_user=True``) or warned about once per call site.

The message lists every place the adapter looked, in resolution order, so the fix is one read away.
The warning (:class:`~openrouter_attribution.errors.MissingUserWarning`) points at the application's
own line (the first frame outside this library and the frameworks), so ``warnings`` filters and
``-W error`` work on it, and each such line warns once per process.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping

from openrouter_attribution.attribution import LAYERS
from openrouter_attribution.errors import MissingUserError, MissingUserWarning

__all__ = ["report_missing_user"]

_PACKAGE_PREFIXES = ("openrouter_attribution", "langchain", "langgraph", "llama_index", "workflows", "asyncio",
                     "concurrent", "threading", "contextvars", "pydantic", "tenacity")  # fmt: skip

_WARNED_SITES: set[tuple[str, int]] = set()
"""Call sites already warned about a missing user (process-wide: one warning per call site; a warning
that a filter turned into an error does not count)."""


def report_missing_user(searched: Mapping[str, tuple[str, ...]] | None, *, refuse: bool) -> None:
    """Raise :class:`MissingUserError` (``refuse``) or warn once for the calling line.

    Args:
        searched: Per layer name, the places the adapter looked for a user.
        refuse: Raise instead of warning (``require_user=True``).
    """
    named = {**(searched or {}), "context": ("user_context()",), "default": ("the model's `user` field",)}
    places = [place for layer in LAYERS for place in named.get(layer, ())]
    message = (
        "No end-user id was found for this call. Looked in: " + "; ".join(places) + ". Pass user=... "
        "to the call, set it in the run config, or wrap the call in user_context(...)"
    )
    if refuse:
        raise MissingUserError(
            message + " (require_user=True: calls without a user are refused).", searched=tuple(places)
        )
    filename, lineno, module = _call_site()
    if (filename, lineno) in _WARNED_SITES:
        return
    warnings.warn_explicit(
        message + "; or set require_user=False on the model to allow unattributed calls (warned once per call site).",
        MissingUserWarning,
        filename,
        lineno,
        module=module,
    )
    # Only once the warning returned: a filter that turns it into an error raises at every call.
    _WARNED_SITES.add((filename, lineno))


def _call_site() -> tuple[str, int, str]:
    """File, line and module of the first caller frame outside this library and the frameworks."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_PACKAGE_PREFIXES):
            return frame.f_code.co_filename, frame.f_lineno, module
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0, ""
