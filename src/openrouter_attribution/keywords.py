"""Constructor keywords checked by name: a misspelled option raises instead of being dropped or
surfacing as a bare ``TypeError``.

:func:`unknown_keywords_error` names every unknown keyword with the closest accepted one ("did you
mean ``temperature``?"); :func:`checked_keywords` gives a plain class's ``__init__`` that error.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from openrouter_attribution.errors import ConfigurationError

__all__ = ["checked_keywords", "unknown_keywords_error"]

C = TypeVar("C", bound=type)


def unknown_keywords_error(
    owner: str, unknown: Iterable[str], known: Iterable[str], *, hint: str = ""
) -> ConfigurationError:
    """The error for ``unknown`` keywords of ``owner``, each named with its closest ``known`` one.

    Only names are shown, never values (a value may be a secret or personal data).
    """
    choices = sorted(known)
    names = sorted(unknown)
    named = []
    for name in names[:5]:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
        named.append(f"{name[:80]!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return ConfigurationError(f"{owner} has no option {', '.join(named)}{more}. Check the spelling{hint}.")


def checked_keywords(cls: C) -> C:
    """Class decorator: an unknown keyword given to ``cls(...)`` raises :class:`ConfigurationError`.

    Costs nothing on a good call: the keywords are compared only after ``__init__`` raised ``TypeError``.
    """
    init: Callable[..., None] = cls.__init__  # type: ignore[misc]
    parameters = inspect.signature(init).parameters.values()
    known = frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) - {"self"}

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except TypeError as err:
            unknown = kwargs.keys() - known
            if unknown:
                raise unknown_keywords_error(cls.__name__, unknown, known) from err
            raise

    cls.__init__ = __init__  # type: ignore[misc]
    return cls
