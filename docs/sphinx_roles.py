"""A Griffe extension for the API reference: Sphinx roles in docstrings rendered as code.

The docstrings name other objects with Sphinx roles (``:class:`~openrouter_attribution.UsageLedger```),
which Markdown would show as they are written. This turns each into inline code holding the name a
reader sees in Sphinx: the last component with ``~``, the whole path without it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles as inline code in every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_as_code, obj.docstring.value)
